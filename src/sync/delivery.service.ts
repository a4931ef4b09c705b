import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import type { Server } from 'socket.io';
import { DeliveredChange, EVENTS } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import type { FeedEntry } from '../feed/change-feed.repository';
import { toDelivered } from '../feed/change-feed.service';

/** Local sockets that should receive one applied change. */
export interface Recipients {
  inView: Iterable<string>;
  outOfView: Iterable<string>;
}

/**
 * Decides which of this node's sockets receive a change. The subscription module provides the real
 * one (subscriptions + read rules); the fallback sends every change to every joined socket.
 */
export abstract class ChangeRouter {
  abstract route(entry: FeedEntry, server: Server): Recipients;
}

export const JOINED_ROOM = 'joined';

export class AllJoinedRouter extends ChangeRouter {
  route(_entry: FeedEntry, server: Server): Recipients {
    return { inView: server.sockets.adapter.rooms.get(JOINED_ROOM) ?? [], outOfView: [] };
  }
}

/** Carries applied changes to the other server nodes (Redis, Azure Web PubSub); none by default. */
export abstract class ClusterBus {
  abstract publish(entries: FeedEntry[]): void;
  abstract onRemote(handler: (entries: FeedEntry[]) => void): void;
}

export const CLUSTER_BUS = Symbol('CLUSTER_BUS');

/** Pushes applied changes to the sockets that should see them, through Socket.IO rooms. */
@Injectable()
export class DeliveryService {
  private readonly logger = new Logger('Delivery');
  private server?: Server;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly router: ChangeRouter,
    private readonly metrics: MetricsService,
    @Optional() @Inject(CLUSTER_BUS) private readonly bus?: ClusterBus,
  ) {}

  attach(server: Server): void {
    this.server = server;
    this.bus?.onRemote((entries) => this.deliverLocal(entries.map((entry) => ({ entry }))));
  }

  /** Delivers on this node and hands the changes to the other nodes. */
  publish(applied: { entry: FeedEntry; originSocketId?: string }[]): void {
    try {
      this.deliverLocal(applied);
    } catch (e) {
      this.logger.error(`delivery failed: ${(e as Error).stack}`);
    }
    this.bus?.publish(applied.map((a) => a.entry));
  }

  deliverLocal(applied: { entry: FeedEntry; originSocketId?: string }[]): void {
    const server = this.server;
    if (!server) return;
    const perSocket = new Map<string, { sig: string; changes: DeliveredChange[] }>();
    const echo = this.config.sync.broadcastToSender;
    applied.forEach(({ entry, originSocketId }, i) => {
      const { inView, outOfView } = this.router.route(entry, server);
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
    // sockets that get exactly the same changes share one broadcast (encoded once)
    const groups = new Map<string, { ids: string[]; changes: DeliveredChange[] }>();
    for (const [id, { sig, changes }] of perSocket) {
      const g = groups.get(sig);
      if (g) g.ids.push(id);
      else groups.set(sig, { ids: [id], changes });
    }
    let delivered = 0;
    for (const { ids, changes } of groups.values()) {
      server.local.to(ids).emit(EVENTS.changes, changes);
      delivered += ids.length * changes.length;
    }
    if (delivered) this.metrics.changesDelivered.inc(delivered);
  }
}
