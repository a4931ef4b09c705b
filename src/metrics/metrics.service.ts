import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Counters for /stats and /metrics (Prometheus). One registry per application instance, so several
 * apps in one process (tests) never share or clash.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly changesReceived = new Counter({ name: 'sync_changes_received_total', help: 'Changes received from clients', registers: [this.registry] });
  readonly changesApplied = new Counter({
    name: 'sync_changes_applied_total',
    help: 'Changes applied and added to the change feed',
    registers: [this.registry],
  });
  readonly changesRejected = new Counter({
    name: 'sync_changes_rejected_total',
    help: 'Changes rejected, by reason code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly changesDuplicate = new Counter({ name: 'sync_changes_duplicate_total', help: 'Retries of already applied changes', registers: [this.registry] });
  readonly changesDelivered = new Counter({ name: 'sync_changes_delivered_total', help: 'Changes pushed to sockets (per socket)', registers: [this.registry] });
  readonly pendingChanges = new Gauge({ name: 'sync_changes_in_flight', help: 'Changes received and not yet answered', registers: [this.registry] });
  readonly activeConnections = new Gauge({ name: 'sync_connections_active', help: 'Connected sockets', registers: [this.registry] });
  readonly activeUsers = new Gauge({ name: 'sync_users_active', help: 'Distinct users with at least one joined socket', registers: [this.registry] });
  readonly authFailures = new Counter({
    name: 'sync_auth_failures_total',
    help: 'Failed authentications, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: 'sync_connections_refused_total',
    help: 'Connections refused by a limit',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly subscriptionMatchFailures = new Counter({
    name: 'sync_subscription_match_failures_total',
    help: 'Subscriptions not evaluated for a change (budget: over QUERY_MATCH_BUDGET; error: dropped; read_rule)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly readsRefused = new Counter({
    name: 'sync_reads_refused_total',
    help: 'Reads refused by a limit (budget, bootstraps, subscriptions)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly rateLimitFallbacks = new Counter({
    name: 'sync_rate_limit_fallback_total',
    help: 'Rate-limit checks counted on the local node because Redis (REDIS_URL) did not answer, by limit (changes, reads)',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly applyDuration = new Histogram({
    name: 'sync_apply_duration_seconds',
    help: 'Time to apply one change or one batch',
    labelNames: ['kind'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  /** Users currently joined, with their socket counts. */
  private readonly users = new Map<string, number>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  userJoined(userId: string): void {
    this.users.set(userId, (this.users.get(userId) ?? 0) + 1);
    this.activeUsers.set(this.users.size);
  }

  userLeft(userId: string): void {
    const n = (this.users.get(userId) ?? 0) - 1;
    if (n <= 0) this.users.delete(userId);
    else this.users.set(userId, n);
    this.activeUsers.set(this.users.size);
  }

  activeUserIds(): string[] {
    return [...this.users.keys()];
  }

  private static async value(metric: Counter | Gauge): Promise<number> {
    const m = await metric.get();
    return m.values.reduce((s, v) => s + v.value, 0);
  }

  async snapshot() {
    const v = MetricsService.value;
    const rejected = await this.changesRejected.get();
    const byCode: Record<string, number> = {};
    for (const r of rejected.values) byCode[String(r.labels.code)] = r.value;
    const mem = process.memoryUsage();
    return {
      totalChanges: await v(this.changesReceived),
      syncedChanges: await v(this.changesApplied),
      pendingChanges: await v(this.pendingChanges),
      activeConnections: await v(this.activeConnections),
      activeUsers: this.activeUserIds(),
      activeUserCount: this.users.size,
      rejectedChanges: byCode,
      duplicateChanges: await v(this.changesDuplicate),
      deliveredChanges: await v(this.changesDelivered),
      authFailures: await v(this.authFailures),
      uptimeSeconds: Math.round(process.uptime()),
      memory: { rss: mem.rss, heapUsed: mem.heapUsed },
    };
  }
}
