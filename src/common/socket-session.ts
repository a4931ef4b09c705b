import { Global, Injectable, Module } from '@nestjs/common';
import type { AuthUser } from './user';

/** A socket's connection slot (ConnectionLimitService): what it counts for, per address and per user. */
export interface ConnectionSlot {
  address?: string;
  userId?: string;
  /** Authenticated (a verified handshake token or a join): such sockets count first at an address. */
  authenticated: boolean;
  since: number;
}

/**
 * A socket's subscriptions (SubscriptionRegistry): `S` is the registry's subscription type. `subs`
 * is an exact-size array, replaced on each change, while the socket has a few (most have one or
 * two: a Map costs ~150 B more), and a Map by id beyond (SubscriptionRegistry.SMALL).
 */
export interface SessionSubscriptions<S = unknown> {
  user: AuthUser;
  subs: readonly S[] | Map<string, S>;
  version: number;
}

/** What the session's deadline does when it passes (SocketAuthService's timer wheel). */
export type DeadlineKind = 'join' | 'expiry' | 'grace';

/** The few members of a socket the session needs (a Socket.IO socket, or a stand-in in unit tests). */
export interface SessionSocket {
  readonly id: string;
  readonly disconnected: boolean;
  emit(event: string, ...args: unknown[]): unknown;
  disconnect(close?: boolean): unknown;
}

/**
 * Everything this node keeps for one socket, in one object: created by the handshake
 * (SocketAuthService) and released by one handler, the gateway's `handleDisconnect` (or, for a
 * connection that closes before its socket connects, by the same release called from the
 * handshake). Each module owns its fields and its step of the release; the modules' global indexes
 * (subscriptions per collection, sockets per address and per user) point at sockets by id, and the
 * release takes the socket out of them. Fields are plain and optional so an idle socket costs one
 * small object: no Map, timer or closure of its own (auth deadlines run on one shared timer).
 */
export class SocketSession {
  /** The Socket.IO socket, once its handshake has started (undefined in unit tests of one service). */
  socket?: SessionSocket;
  /** Auth: when the deadline fires (ms since the epoch; 0: none), and what it does then. */
  deadline = 0;
  deadlineKind?: DeadlineKind;
  /** Auth: the token's expiry the deadline was armed for (a re-join with a fresh token moves it). */
  expiresAt?: number;
  /** Limits: the connection slot (per address, per user). */
  slot?: ConnectionSlot;
  /** Limits: sync:get_changes of this socket in flight (ReadBudgetService.exclusive). */
  readsInFlight = 0;
  /** Subscriptions: the socket's subscriptions, once it has subscribed (SubscriptionRegistry). */
  subscriptions?: SessionSubscriptions;
  /** Subscriptions: the socket's bootstraps run one after another behind this promise (BootstrapScheduler). */
  bootstraps?: Promise<void>;
  /** Set by the release: late completions (a join, a Redis answer) see it and take nothing. */
  released = false;

  /** (No `connectedAt`: nothing read it, and a timestamp is a 16 B heap number per socket; the slot has `since`.) */
  constructor(readonly id: string) {}
}

/**
 * The node's sessions by socket id: the only per-socket map. Modules that hold a socket id (a
 * subscription, a connection count of an address) find its session here.
 */
@Injectable()
export class SocketSessions {
  private readonly byId = new Map<string, SocketSession>();

  get(id: string): SocketSession | undefined {
    return this.byId.get(id);
  }

  /** The socket's session, created if it has none (taking a slot or a subscription for a socket id). */
  open(id: string): SocketSession {
    let s = this.byId.get(id);
    if (!s) this.byId.set(id, (s = new SocketSession(id)));
    return s;
  }

  /** Forgets the session (the last step of the release). */
  close(id: string): void {
    const s = this.byId.get(id);
    if (!s) return;
    s.released = true;
    this.byId.delete(id);
  }

  values(): IterableIterator<SocketSession> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }
}

/** Provides the one SocketSessions of the node to every module (global). */
@Global()
@Module({ providers: [SocketSessions], exports: [SocketSessions] })
export class SocketSessionsModule {}
