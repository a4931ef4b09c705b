import { Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import Redis, { RedisOptions } from 'ioredis';
import { Counter, Gauge } from 'prom-client';
import { MetricsService } from '../metrics/metrics.service';
import type { FeedEntry } from '../feed/change-feed.repository';
import { ClusterBus } from '../delivery/delivery.ports';
import { BusKey, ClusterCodecError, decodeMessage, encodeBatch } from './cluster.codec';

/** What /health shows about the bus. */
export interface ClusterBusHealth {
  kind: 'redis';
  status: 'up' | 'down';
  nodeId: string;
  channel: string;
  /** ioredis states of the publishing and the subscribed connection. */
  publisher: string;
  subscriber: string;
  subscribed: boolean;
  /** When the status last changed (UTC ms). */
  since: number;
  lastError?: string;
}

/** A bus that can report its state (RedisClusterBus; anything else under CLUSTER_BUS may too). */
export interface ReportsHealth {
  health(): ClusterBusHealth;
}

export function reportsHealth(bus: unknown): bus is ReportsHealth {
  return !!bus && typeof (bus as ReportsHealth).health === 'function';
}

export interface RedisClusterBusOptions {
  url: string;
  channel: string;
  nodeId: string;
  maxMessageBytes: number;
  metrics: MetricsService;
  /** Signs every message and refuses unsigned or forged ones (cluster.codec.ts). */
  signingKey?: BusKey;
  /** Reconnect backoff bounds (ms): doubles from `min` up to `max`, with jitter. */
  backoff?: { min: number; max: number };
  connectTimeoutMs?: number;
  /** How many recent feed positions are remembered so none is handed over twice (default 50,000). */
  rememberPositions?: number;
}

/** A set of numbers that forgets the oldest beyond `capacity`. */
export class RecentPositions {
  private readonly set = new Set<number>();
  private readonly ring: number[];
  private next = 0;

  constructor(private readonly capacity: number) {
    this.ring = new Array<number>(capacity);
  }

  /** Adds `n`; false when it was already there. */
  add(n: number): boolean {
    if (this.set.has(n)) return false;
    if (this.set.size >= this.capacity) this.set.delete(this.ring[this.next]);
    this.ring[this.next] = n;
    this.next = (this.next + 1) % this.capacity;
    this.set.add(n);
    return true;
  }

  has(n: number): boolean {
    return this.set.has(n);
  }
}

/** The URL without its password, for logs and /health. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://(unparsable url)';
  }
}

/**
 * Carries applied changes between server nodes over one Redis pub/sub channel.
 *
 * Each node publishes the feed entries it applied, tagged with its node id; every node receives every
 * message, ignores its own and offers the others to its DeliveryService, which delivers them in feed
 * order through its local subscriptions and read rules. Delivery through the bus is best effort: the write
 * is in MongoDB before it is published, and a client that missed a live change gets it from the
 * change feed (sync:get_changes). So Redis being down never fails a write nor the node: publishing is
 * skipped (and counted) while it is down, both connections reconnect with a capped, jittered backoff,
 * and state changes are logged once, not per failed attempt. Nothing depends on the bus for
 * correctness: every node's FeedTailer reads the feed for what the bus did not bring (down, message
 * lost, node died before publishing) and delivers every change once, in feed order; the bus only
 * brings changes sooner and wakes the tailer.
 */
export class RedisClusterBus extends ClusterBus implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('ClusterBus');
  readonly nodeId: string;
  readonly channel: string;
  private readonly pub: Redis;
  private readonly sub: Redis;
  private handler?: (entries: FeedEntry[]) => void;
  private subscribed = false;
  private up = false;
  private since = Date.now();
  private lastError?: string;
  /** Errors already logged in this outage (ioredis reports one per failed attempt). */
  private errorLogged = false;
  private skippedWhileDown = 0;
  private closing = false;
  /** Positions published or received here, so none is handed to delivery twice (delivery dedupes too). */
  private readonly seen: RecentPositions;

  /**
   * Test-only fault injection, off unless a test sets it on the instance: the next `dropPublishes`
   * messages are not sent, as if Redis had lost them. Not reachable from configuration or the network.
   */
  readonly faults = { dropPublishes: 0 };

  private readonly connectedGauge: Gauge;
  private readonly published: Counter;
  private readonly received: Counter;
  private readonly replayed: Counter;
  private readonly dropped: Counter<'reason'>;

  constructor(private readonly opts: RedisClusterBusOptions) {
    super();
    this.nodeId = opts.nodeId;
    this.channel = opts.channel;
    const registers = [opts.metrics.registry];
    this.connectedGauge = new Gauge({
      name: 'sync_cluster_bus_connected',
      help: '1 while the Redis cluster bus is connected and subscribed, else 0',
      registers,
    });
    this.published = new Counter({ name: 'sync_cluster_changes_published_total', help: 'Applied changes published to the other nodes', registers });
    this.received = new Counter({
      name: 'sync_cluster_changes_received_total',
      help: 'Changes received from other nodes and handed to local delivery',
      registers,
    });
    this.replayed = new Counter({
      name: 'sync_cluster_changes_replayed_total',
      help: 'Changes of other nodes the bus did not bring (down, lost, late): read from the change feed and delivered from there',
      registers,
    });
    this.seen = new RecentPositions(opts.rememberPositions ?? 50_000);
    this.dropped = new Counter({
      name: 'sync_cluster_changes_dropped_total',
      help: 'Changes not carried by the bus, by reason (their receivers catch up through the change feed)',
      labelNames: ['reason'] as const,
      registers,
    });
    this.connectedGauge.set(0);

    const { min, max } = opts.backoff ?? { min: 100, max: 5000 };
    const base: RedisOptions = {
      lazyConnect: true,
      // never queue while disconnected: a publish is skipped, a subscribe is redone on 'ready'
      enableOfflineQueue: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 1,
      connectTimeout: opts.connectTimeoutMs ?? 5000,
      retryStrategy: (times) => {
        const d = Math.min(max, min * 2 ** Math.min(times - 1, 16));
        return Math.round(d / 2 + (Math.random() * d) / 2);
      },
    };
    this.pub = new Redis(opts.url, { ...base, connectionName: `sync-pub-${this.nodeId}` });
    this.sub = new Redis(opts.url, { ...base, connectionName: `sync-sub-${this.nodeId}` });
    this.wire(this.pub, 'publisher');
    this.wire(this.sub, 'subscriber');
    this.sub.on('ready', () => void this.subscribe());
    this.sub.on('close', () => {
      this.subscribed = false;
      this.refresh();
    });
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel, message));
  }

  onModuleInit(): void {
    this.logger.log(`node ${this.nodeId}: connecting to ${redactRedisUrl(this.opts.url)}, channel ${this.channel}`);
    // connection failures are reported through 'error' and retried by ioredis: never awaited here,
    // so a node starts (and accepts writes) while Redis is down
    for (const c of [this.pub, this.sub]) c.connect().catch(() => undefined);
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    await Promise.all([this.pub, this.sub].map((c) => this.close(c)));
    this.up = false;
    this.connectedGauge.set(0);
  }

  private async close(c: Redis): Promise<void> {
    if (c.status === 'ready') {
      const quit = c.quit().catch(() => undefined);
      const timeout = new Promise((r) => setTimeout(r, 1000).unref());
      await Promise.race([quit, timeout]);
    }
    c.disconnect(false);
  }

  onRemote(handler: (entries: FeedEntry[]) => void): void {
    this.handler = handler;
  }

  override recovered(count: number): void {
    this.replayed.inc(count);
  }

  publish(entries: FeedEntry[]): void {
    if (entries.length === 0) return;
    try {
      for (const e of entries) this.seen.add(e._id); // delivered here already
      // only the publishing connection matters here (our own subscription may be down on its own)
      if (this.pub.status !== 'ready') {
        this.skippedWhileDown += entries.length;
        this.dropped.inc({ reason: 'bus_down' }, entries.length);
        return;
      }
      const { messages, dropped } = encodeBatch(this.nodeId, entries, this.opts.maxMessageBytes, this.opts.signingKey);
      for (const d of dropped) {
        this.dropped.inc({ reason: d.reason });
        this.logger.warn(
          d.reason === 'too_large'
            ? `change ${d.entry.changeId} (feed position ${d.entry._id}) not sent to the other nodes: ${d.bytes} bytes > REDIS_MAX_MESSAGE_BYTES ${this.opts.maxMessageBytes}; their clients get it from the change feed`
            : `change ${d.entry.changeId} (feed position ${d.entry._id}) not sent to the other nodes: ${d.error}`,
        );
      }
      const sent = entries.length - dropped.length;
      for (const m of messages) {
        if (this.faults.dropPublishes > 0) {
          this.faults.dropPublishes--;
          continue;
        }
        this.pub.publish(this.channel, m).catch((e: Error) => {
          this.dropped.inc({ reason: 'publish_failed' });
          this.logger.warn(`publish failed: ${e.message}`);
        });
      }
      if (sent) this.published.inc(sent);
    } catch (e) {
      // never let the bus break the write path
      this.dropped.inc({ reason: 'publish_failed' }, entries.length);
      this.logger.error(`publish failed: ${(e as Error).stack}`);
    }
  }

  health(): ClusterBusHealth {
    return {
      kind: 'redis',
      status: this.up ? 'up' : 'down',
      nodeId: this.nodeId,
      channel: this.channel,
      publisher: this.pub.status,
      subscriber: this.sub.status,
      subscribed: this.subscribed,
      since: this.since,
      ...(this.lastError && !this.up ? { lastError: this.lastError } : {}),
    };
  }

  get connected(): boolean {
    return this.up;
  }

  // ---------------------------------------------------------------- internals

  private wire(c: Redis, role: string): void {
    c.on('error', (e: Error) => {
      this.lastError = `${role}: ${e.message}`;
      if (this.closing) return;
      if (!this.errorLogged) {
        this.errorLogged = true;
        this.logger.warn(`Redis ${role} error: ${e.message} (retrying with backoff)`);
      } else this.logger.debug(`Redis ${role} error: ${e.message}`);
    });
    c.on('ready', () => this.refresh());
    c.on('close', () => {
      if (!this.closing) this.lastError ??= `${role}: connection closed`;
      this.refresh();
    });
    c.on('reconnecting', (ms: number) => this.logger.debug(`Redis ${role} reconnecting in ${ms} ms`));
  }

  private async subscribe(): Promise<void> {
    try {
      await this.sub.subscribe(this.channel);
      this.subscribed = true;
    } catch (e) {
      this.lastError = `subscriber: ${(e as Error).message}`;
      this.logger.warn(`subscribe to ${this.channel} failed: ${(e as Error).message}`);
      // a failed SUBSCRIBE on a live connection: drop it, ioredis reconnects and 'ready' retries
      if (this.sub.status === 'ready') this.sub.disconnect(true);
    }
    this.refresh();
  }

  /** Recomputes up/down from both connections and logs the transition. */
  private refresh(): void {
    const up = !this.closing && this.pub.status === 'ready' && this.sub.status === 'ready' && this.subscribed;
    if (up === this.up) return;
    this.up = up;
    this.since = Date.now();
    this.connectedGauge.set(up ? 1 : 0);
    if (up) {
      this.errorLogged = false;
      this.lastError = undefined;
      const skipped = this.skippedWhileDown;
      this.skippedWhileDown = 0;
      this.logger.log(
        `cluster bus up (node ${this.nodeId}, channel ${this.channel})` +
          (skipped
            ? `; ${skipped} change(s) applied here while it was down were not pushed to the other nodes (the other nodes read them from the change feed)`
            : ''),
      );
    } else if (!this.closing) {
      this.logger.warn(
        `cluster bus down${this.lastError ? ` (${this.lastError})` : ''}: changes of other nodes reach this node's clients through the change feed (DELIVERY_POLL_INTERVAL_MS) until it is back; writes go on`,
      );
    }
  }

  private onMessage(channel: Buffer, message: Buffer): void {
    if (channel.toString() !== this.channel) return;
    let decoded;
    try {
      decoded = decodeMessage(message, this.opts.maxMessageBytes, this.opts.signingKey);
    } catch (e) {
      const reason = e instanceof ClusterCodecError ? e.reason : 'unparsable';
      this.dropped.inc({ reason: `received_${reason}` });
      this.logger.warn(`dropped a bus message (${message.length} bytes): ${(e as Error).message}`);
      return;
    }
    if (decoded.node === this.nodeId) return; // our own, already delivered locally
    if (decoded.invalid) {
      this.dropped.inc({ reason: 'received_invalid' }, decoded.invalid);
      this.logger.warn(`dropped ${decoded.invalid} malformed change(s) in a message from node ${decoded.node}`);
    }
    if (!this.handler) return;
    const fresh = decoded.entries.filter((e) => this.seen.add(e._id));
    if (!fresh.length) return;
    try {
      this.handler(fresh);
      this.received.inc(fresh.length);
    } catch (e) {
      this.logger.error(`delivery of ${fresh.length} change(s) from node ${decoded.node} failed: ${(e as Error).stack}`);
    }
  }
}
