import { Inject, Injectable, Logger, OnModuleDestroy, Optional } from '@nestjs/common';
import { Counter } from 'prom-client';
import type { Server, Socket } from 'socket.io';
import { ChangeAck, decodeCursor, DeliveredChange, encodeCursor, EVENTS } from '@sync/protocol';
import { closeNow, queuedBytes } from '../common/socket-buffer';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { ChangeFeedService } from '../feed/change-feed.service';
import { toDelivered } from '../feed/feed-entries';
import { SYNC_TIMINGS, SyncTimings } from '../feed/sync.constants';
import { CLUSTER_BUS, ChangeRouter, ClusterBus, Recipients } from './delivery.ports';
import { DEFAULT_TAILER_OPTIONS, FeedTailer, Offered } from './feed-tailer';
import { directTarget, encodeEventFrame } from './direct-frame';

/** The optional notice a socket gets before it is disconnected for not reading what it is sent. */
export const SLOW_CONSUMER = 'SLOW_CONSUMER';

/**
 * Pushes applied changes to the sockets that should see them. Every change, whichever node wrote it,
 * goes through this node's FeedTailer, which hands them over in feed order and exactly once (local
 * writes at once, other nodes' from the bus or, when the bus lost or did not bring them, from the
 * feed); they are routed (subscriptions, read rules, outOfView) and sockets receiving the same changes
 * share one encoding: one WebSocket frame written to each WebSocket connection directly where that is
 * order-safe (direct-frame.ts), one Socket.IO broadcast for the others. A socket whose outgoing buffer
 * is over MAX_SOCKET_BUFFER_BYTES is disconnected instead of buffering without bound: it catches up
 * from the feed when it reconnects.
 */
@Injectable()
export class DeliveryService implements OnModuleDestroy {
  private readonly logger = new Logger('Delivery');
  private server?: Server;
  readonly tailer: FeedTailer;
  private readonly slowConsumers: Counter;
  private readonly fromFeed: Counter;
  private readonly directFrames: Counter;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly router: ChangeRouter,
    private readonly metrics: MetricsService,
    private readonly feed: ChangeFeedService,
    @Inject(SYNC_TIMINGS) private readonly timings: SyncTimings,
    @Optional() @Inject(CLUSTER_BUS) private readonly bus?: ClusterBus | null,
  ) {
    const registers = [metrics.registry];
    this.slowConsumers = new Counter({
      name: 'sync_slow_consumer_disconnects_total',
      help: 'Sockets disconnected because their outgoing buffer exceeded MAX_SOCKET_BUFFER_BYTES (they catch up from the feed)',
      registers,
    });
    this.fromFeed = new Counter({
      name: 'sync_delivery_read_from_feed_total',
      help: 'Changes delivered live after reading them from the change feed (nobody offered them: lost or late bus message, bus down)',
      registers,
    });
    this.directFrames = new Counter({
      name: 'sync_delivery_direct_frames_total',
      help: 'Live-change frames written straight to a WebSocket connection (built once per group of sockets; the rest go through Socket.IO)',
      registers,
    });
    this.tailer = new FeedTailer(
      { head: () => feed.head(), highWater: () => feed.highWater(), tail: (after, maxScan) => feed.tail(after, maxScan) },
      (batch, fromFeed) => {
        if (fromFeed) {
          this.fromFeed.inc(fromFeed);
          this.bus?.recovered?.(fromFeed);
        }
        this.deliverLocal(batch);
      },
      { ...DEFAULT_TAILER_OPTIONS, pollMs: config.sync.deliveryPollMs },
    );
  }

  attach(server: Server): void {
    this.server = server;
    this.bus?.onRemote((entries) => this.tailer.offer(entries.map((entry) => ({ entry }))));
    void this.tailer.start();
  }

  onModuleDestroy(): void {
    this.tailer.stop();
  }

  /**
   * This node has written these feed positions ahead (pending) and settles them now: live delivery
   * waits for their offer (`publish`) instead of reading the feed for them. Pair with `written`.
   */
  writingAt(positions: readonly number[]): void {
    this.tailer.writingAt(positions);
  }

  /** The writer is done with these positions: published, or not applied (live delivery reads what they became). */
  written(positions: readonly number[]): void {
    this.tailer.written(positions);
  }

  /** Delivers on this node (in feed order) and hands the changes to the other nodes. */
  publish(applied: Offered[]): void {
    this.tailer.offer(applied);
    this.bus?.publish(applied.map((a) => a.entry));
  }

  /**
   * Holds a socket's acks until this node has delivered everything up to their positions, so the
   * `cursor` of an ack never lets a client skip a change it has not received yet (every earlier change
   * it should see was emitted to it before the ack). Normally a matter of milliseconds; when an earlier
   * position is blocked longer (a writer died holding it: repaired after the stale limit), the ack goes
   * out after that limit with the cursor this node has delivered up to instead.
   */
  async settleAcks(acks: readonly (ChangeAck | undefined)[]): Promise<void> {
    let max = 0;
    for (const a of acks) if (a?.success && a.cursor) max = Math.max(max, decodeCursor(a.cursor) ?? 0);
    if (max === 0) return;
    if (await this.tailer.whenDelivered(max, this.timings.staleAfterMs + 1000)) return;
    const safe = this.tailer.position;
    if (safe < 0) return;
    for (const a of acks) if (a?.success && a.cursor && (decodeCursor(a.cursor) ?? 0) > safe) a.cursor = encodeCursor(safe);
  }

  /** `pos`, or the position this node has delivered up to when that is earlier (a cursor safe to catch up from). */
  safeCursor(pos: number): number {
    const delivered = this.tailer.position;
    return delivered >= 0 ? Math.min(pos, delivered) : pos;
  }

  /** Routes changes (in feed order) to this node's sockets and emits them. */
  deliverLocal(applied: Offered[]): void {
    const server = this.server;
    if (!server) return;
    const echo = this.config.sync.broadcastToSender;
    // sockets that get exactly the same changes share one broadcast (one encoding). One change: two
    // groups at most (in view, out of view), without per-socket bookkeeping.
    const groups: { ids: string[]; changes: DeliveredChange[] }[] = [];
    if (applied.length === 1) {
      const { entry, originSocketId } = applied[0];
      const routed = this.route(entry, server);
      if (!routed) return;
      const { inView, outOfView } = routed;
      const skip = echo ? undefined : originSocketId;
      const ins = [...inView].filter((id) => id !== skip);
      const outs = [...outOfView].filter((id) => id !== skip);
      if (ins.length) groups.push({ ids: ins, changes: [toDelivered(entry)] });
      if (outs.length) groups.push({ ids: outs, changes: [toDelivered(entry, true)] });
    } else {
      // as arrays: a custom router may hand out iterables that can be walked only once
      const routes = applied.map(({ entry }) => {
        const r = this.route(entry, server);
        return r && { inView: asArray(r.inView), outOfView: asArray(r.outOfView) };
      });
      const same = sameRecipients(routes);
      if (same) groups.push(...this.commonGroups(applied, same, echo));
      else groups.push(...this.groupsBySignature(applied, routes, echo));
    }
    const limit = this.config.limits.maxSocketBufferBytes;
    const sockets = server.sockets.sockets;
    const direct = this.config.sync.deliveryDirectWrite;
    let delivered = 0;
    let directly = 0;
    for (const { ids, changes } of groups) {
      // the WebSocket frame is built once per group, on the first socket that can take it directly;
      // the others (polling, busy, upgrading) share one Socket.IO broadcast
      let frame: Buffer | null | undefined = direct ? undefined : null;
      const viaSocketIo: string[] = [];
      let sent = 0;
      for (const id of ids) {
        const s = sockets.get(id);
        if (!s) continue;
        // a socket that can take a direct write has nothing queued (so is within the bound)
        const target = frame === null ? null : directTarget(s);
        if (target) {
          frame ??= encodeEventFrame(server, EVENTS.changes, changes);
          if (frame) {
            target.write(frame);
            sent++;
            directly++;
            continue;
          }
        }
        const queued = queuedBytes(s);
        if (queued > limit) {
          this.dropSlowConsumer(s, queued, limit);
          continue;
        }
        sent++;
        viaSocketIo.push(id);
      }
      if (viaSocketIo.length) server.local.to(viaSocketIo).emit(EVENTS.changes, changes);
      delivered += sent * changes.length;
    }
    if (delivered) this.metrics.changesDelivered.inc(delivered);
    if (directly) this.directFrames.inc(directly);
  }

  /**
   * Every change of the step goes in view to the same sockets (the common case: one collection, one
   * read rule): one group with all of them, and a group of its own for each writing socket among the
   * recipients (no echo of its own changes).
   */
  private commonGroups(applied: Offered[], ids: string[], echo: boolean): { ids: string[]; changes: DeliveredChange[] }[] {
    const all = applied.map(({ entry }) => toDelivered(entry));
    const origins = echo ? undefined : new Set(applied.map((a) => a.originSocketId).filter((o): o is string => o !== undefined));
    if (!origins?.size) return [{ ids, changes: all }];
    const common: string[] = [];
    const groups: { ids: string[]; changes: DeliveredChange[] }[] = [];
    for (const id of ids) {
      if (!origins.has(id)) common.push(id);
      else {
        const own = all.filter((_, i) => applied[i].originSocketId !== id);
        if (own.length) groups.push({ ids: [id], changes: own });
      }
    }
    if (common.length) groups.unshift({ ids: common, changes: all });
    return groups;
  }

  /** Sockets grouped by the exact list of changes (and views) they get. */
  private groupsBySignature(applied: Offered[], routes: (Routed | null)[], echo: boolean): { ids: string[]; changes: DeliveredChange[] }[] {
    const perSocket = new Map<string, { sig: string; changes: DeliveredChange[] }>();
    applied.forEach(({ entry, originSocketId }, i) => {
      const routed = routes[i];
      if (!routed) return;
      const { inView, outOfView } = routed;
      let full: DeliveredChange | undefined;
      let oov: DeliveredChange | undefined;
      const add = (id: string, out: boolean) => {
        if (!echo && id === originSocketId) return;
        const c = out ? (oov ??= toDelivered(entry, true)) : (full ??= toDelivered(entry));
        const slot = perSocket.get(id);
        if (slot) {
          slot.sig += `,${out ? '-' : ''}${i}`;
          slot.changes.push(c);
        } else perSocket.set(id, { sig: `${out ? '-' : ''}${i}`, changes: [c] });
      };
      for (const id of inView) add(id, false);
      for (const id of outOfView) add(id, true);
    });
    const bySig = new Map<string, { ids: string[]; changes: DeliveredChange[] }>();
    for (const [id, { sig, changes }] of perSocket) {
      const g = bySig.get(sig);
      if (g) g.ids.push(id);
      else bySig.set(sig, { ids: [id], changes });
    }
    return [...bySig.values()];
  }

  /** The router's answer for one change; a failure skips that change only (its readers catch up). */
  private route(entry: Offered['entry'], server: Server): Recipients | null {
    try {
      return this.router.route(entry, server);
    } catch (e) {
      this.logger.error(`routing of change #${entry._id} failed (its receivers get it on catch-up): ${(e as Error).stack}`);
      return null;
    }
  }

  /**
   * A socket that does not read what it is sent: an optional `sync:error` notice (seen only by a client
   * that still reads), then closed at once, its queued output discarded. Nothing is lost: the client
   * catches up from its cursor after reconnecting, as after any disconnect.
   */
  private dropSlowConsumer(socket: Socket, queued: number, limit: number): void {
    this.slowConsumers.inc();
    const user = (socket.data as { user?: { id?: string } } | undefined)?.user?.id;
    this.logger.warn(
      `socket ${socket.id}${user ? ` (user ${user})` : ''} is not reading: ${queued} bytes queued > MAX_SOCKET_BUFFER_BYTES ${limit}; disconnected (it catches up from the feed)`,
    );
    try {
      socket.emit(EVENTS.syncError, {
        code: SLOW_CONSUMER,
        error: `more than ${limit} bytes were waiting to be sent to this socket: reconnect and catch up from your cursor`,
      });
    } catch {
      /* closing anyway */
    }
    closeNow(socket);
  }
}

/**
 * The sockets every routed change goes to, in view, when they are the same for all (same ids in the
 * same order, nothing out of view, no change whose routing failed); undefined otherwise.
 */
function sameRecipients(routes: (Routed | null)[]): string[] | undefined {
  let ids: string[] | undefined;
  for (const r of routes) {
    if (!r || r.outOfView.length) return undefined;
    const list = r.inView;
    if (!ids) ids = list;
    else if (list.length !== ids.length) return undefined;
    else for (let k = 0; k < list.length; k++) if (list[k] !== ids[k]) return undefined;
  }
  return ids?.length ? ids : undefined;
}

interface Routed {
  inView: string[];
  outOfView: string[];
}

function asArray(ids: Iterable<string>): string[] {
  return Array.isArray(ids) ? (ids as string[]) : [...ids];
}
