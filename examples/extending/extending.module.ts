/*
 * An example of a user's own Nest module plugged into the sync server through createApp's
 * `extensions` (docs/EXTENDING.md): a conflict resolver, a change router and a cluster bus.
 * test/extending.e2e-spec.ts boots the app with it and proves each one is used.
 */
import { DynamicModule, Module } from '@nestjs/common';
import type { Server } from 'socket.io';
import { lastWriteWins } from '../../src/conflict/conflict.strategies';
import { CONFLICT_RESOLVER, ConflictStrategy } from '../../src/conflict/conflict.types';
import type { FeedEntry } from '../../src/feed/change-feed.repository';
import { CHANGE_ROUTER, CLUSTER_BUS, ChangeRouter, ClusterBus, Recipients } from '../../src/delivery/delivery.ports';
import type { SocketData } from '../../src/common/socket-context';

/**
 * A conflict resolver: pure, deterministic, no I/O. A stored document with `locked: true` refuses
 * every change (a CONFLICT ack whose `current` is the stored document); anything else is decided by
 * the built-in last-write-wins.
 */
export const lockAwareResolver: ConflictStrategy = (stored, change) => {
  if (stored.doc?.locked === true && !stored.deleted) {
    return { kind: 'conflict', current: stored.doc, timestamp: stored.timestamp, reason: 'the document is locked' };
  }
  return lastWriteWins(stored, change);
};

/** The team of a user id: the part before the first dot ('red.alice' is in team 'red'). */
export const teamOf = (userId: string | undefined): string | undefined => userId?.split('.', 1)[0];

/**
 * A change router: a change goes only to the joined sockets of its author's team (on top of that,
 * nothing else is checked: this replaces the subscription router, read rules included, so keep
 * whatever filtering your deployment needs in your own router).
 */
export class TeamRouter extends ChangeRouter {
  route(entry: FeedEntry, server: Server): Recipients {
    const team = teamOf(entry.userId);
    const inView: string[] = [];
    if (team === undefined) return { inView, outOfView: [] };
    for (const [id, socket] of server.sockets.sockets) {
      // only joined sockets have a user
      const user = (socket.data as SocketData).user;
      if (user && teamOf(user.id) === team) inView.push(id);
    }
    return { inView, outOfView: [] };
  }
}

/** Carries changes between the nodes of one process (a stand-in for a real broker). */
export class InProcessHub {
  private readonly nodes = new Set<InProcessBus>();
  /** Every batch published by any node, in order (what a broker would have carried). */
  readonly published: { from: string; entries: FeedEntry[] }[] = [];

  join(bus: InProcessBus): void {
    this.nodes.add(bus);
  }

  send(from: InProcessBus, entries: FeedEntry[]): void {
    this.published.push({ from: from.name, entries });
    // asynchronous like a network, and a copy per node like a serialized message
    for (const node of this.nodes) if (node !== from) setImmediate(() => node.receive(structuredClone(entries)));
  }
}

/** A cluster bus: one per node, all on one hub. */
export class InProcessBus extends ClusterBus {
  private handler?: (entries: FeedEntry[]) => void;

  constructor(
    private readonly hub: InProcessHub,
    readonly name: string,
  ) {
    super();
    hub.join(this);
  }

  publish(entries: FeedEntry[]): void {
    this.hub.send(this, entries);
  }

  onRemote(handler: (entries: FeedEntry[]) => void): void {
    this.handler = handler;
  }

  receive(entries: FeedEntry[]): void {
    this.handler?.(entries);
  }
}

export interface ExtendingOptions {
  /** The hub this node's bus joins; without one, the built-in bus (REDIS_URL) or none is used. */
  hub?: InProcessHub;
  /** A name for this node's bus. */
  node?: string;
}

/**
 * The extension module. Global, so the app's modules find what it exports; createApp then leaves
 * out the built-in ConflictModule (and ClusterModule, when a hub is given).
 */
@Module({})
export class ExtendingModule {
  static forRoot(opts: ExtendingOptions = {}): DynamicModule {
    const bus = opts.hub ? [{ provide: CLUSTER_BUS, useFactory: () => new InProcessBus(opts.hub!, opts.node ?? 'node') }] : [];
    return {
      module: ExtendingModule,
      global: true,
      providers: [{ provide: CONFLICT_RESOLVER, useValue: lockAwareResolver }, { provide: CHANGE_ROUTER, useClass: TeamRouter }, ...bus],
      exports: [CONFLICT_RESOLVER, CHANGE_ROUTER, ...(opts.hub ? [CLUSTER_BUS] : [])],
    };
  }
}
