import type { Server } from 'socket.io';
import type { FeedEntry } from '../feed/change-feed.repository';

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

/**
 * Provide your own ChangeRouter under this token (in a global module passed to createApp's
 * `extensions`) to replace the subscription router (docs/EXTENDING.md).
 */
export const CHANGE_ROUTER = Symbol('CHANGE_ROUTER');

export const JOINED_ROOM = 'joined';

/**
 * Carries applied changes to the other server nodes (Redis, Azure Web PubSub); none by default.
 * Best effort: a node reads the change feed itself (FeedTailer), so a message the bus loses only
 * delays a change, it never loses it. The bus is the low-latency path and a wake-up signal.
 */
export abstract class ClusterBus {
  abstract publish(entries: FeedEntry[]): void;
  abstract onRemote(handler: (entries: FeedEntry[]) => void): void;
  /** Told how many changes of other nodes this node had to read from the feed (the bus did not bring them in time). */
  recovered?(count: number): void;
}

export const CLUSTER_BUS = Symbol('CLUSTER_BUS');
