import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type { Server } from 'socket.io';
import { EVENTS, ForbiddenError, SyncError, UnauthenticatedError } from '@sync/protocol';
import { JoinRequestSchema, parsePayload } from '@sync/protocol/schemas';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { addressKey, proxyMatcher, resolveClientAddress } from '../limits/client-address';
import { ConnectionLimitError, ConnectionLimitService } from '../limits/connection-limit.service';
import type { SyncSocket } from '../common/socket-context';
import { DeadlineKind, SessionSocket, SocketSession, SocketSessions } from '../common/socket-session';
import { AuthContext, AuthError, AuthService } from '../auth/auth.service';
import { AuthUser } from '../common/user';

/** A join's `userId` (its token is checked by AuthService, which answers a malformed one UNAUTHENTICATED). */
const JoinUserIdSchema = JoinRequestSchema.pick({ userId: true });

/** setTimeout fires at once for delays above 2^31-1 ms: longer waits are done in steps. */
const MAX_TIMER_MS = 2_147_483_647;
/** How often sockets are checked against the server's list (a safety net; releases normally happen on disconnect). */
const SWEEP_INTERVAL_MS = 60_000;
/** The deadline wheel scans the sessions at most this often (a deadline fires at most this late, never early). */
const WHEEL_MIN_GAP_MS = 25;

/** Messages of a refused handshake (`connect_error`); `err.data` carries the protocol code. */
export const HANDSHAKE_ERRORS = {
  unauthorized: 'unauthorized',
  origin: 'origin not allowed',
} as const;

/** Releases everything the node keeps for a socket (the gateway's one release, see SyncGateway). */
export type SocketRelease = (socketId: string) => void;

/**
 * Authentication of sockets: the handshake middleware and sync:join. The gateway calls only
 * install / join / release, so how users are authenticated can change without touching the
 * sync code.
 *
 * Handshake, in order (cheapest first, so a flood of bad handshakes costs little):
 *  1. Origin: with ALLOWED_ORIGINS set, a browser's Origin must be listed (no Origin: native client).
 *  2. A token in `auth.token`, the `Authorization` header or `query.token` is verified; an invalid
 *     one refuses the connection (`unauthorized`). Without a token the socket may connect and
 *     authenticate with sync:join within JOIN_TIMEOUT_MS, or it is disconnected
 *     (`sync:error` with code `JOIN_TIMEOUT` first).
 *  3. Per-address limit (MAX_CONNECTIONS_PER_IP) on the client address (TRUST_PROXY aware).
 *     Authenticated sockets count first: a full address evicts its oldest unauthenticated socket
 *     for an authenticated one (code `EVICTED`), so anonymous sockets cannot lock users out.
 *  4. Per-user limit (MAX_CONNECTIONS_PER_USER) when the handshake named a user.
 * Refusals are `connect_error` with `err.message` a short sentence and `err.data = { code, error }`.
 *
 * The handshake opens the socket's session (`SocketSession`, on `socket.data.session`). A handshake
 * that fails, or whose connection closed meanwhile, releases it at its end through the gateway's
 * release (Socket.IO then drops the socket without a 'disconnect'); once connected, the gateway's
 * handleDisconnect does. Join timeouts and token expiries are deadlines on the sessions, run by one
 * shared timer (no timer or closure per socket).
 */
@Injectable()
export class SocketAuthService implements OnModuleDestroy {
  private readonly logger = new Logger('SocketAuth');
  private readonly isTrustedProxy: (ip: string) => boolean;
  private sweeper?: NodeJS.Timeout;
  /** The deadline wheel's one timer, and when it fires (0: not armed). */
  private wheel?: NodeJS.Timeout;
  private wheelAt = 0;
  private lastScan = 0;
  /** The sessions with a deadline: the wheel visits these, not every socket of the node. */
  private readonly armed = new Set<SocketSession>();
  private releaseSocket: SocketRelease = () => undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly auth: AuthService,
    private readonly limits: ConnectionLimitService,
    private readonly metrics: MetricsService,
    private readonly sessions: SocketSessions,
  ) {
    this.isTrustedProxy = proxyMatcher(config.server.trustedProxies);
  }

  /** Installs the handshake middleware; `release` is the gateway's release of a socket. */
  install(server: Server, release: SocketRelease): void {
    this.releaseSocket = release;
    server.use((raw, next) => {
      const socket = raw as SyncSocket;
      this.handshake(socket).then(
        () => {
          // closed meanwhile: Socket.IO drops the socket without a 'disconnect', so release here
          if (!open(socket)) this.releaseSocket(socket.id);
          next();
        },
        (e) => {
          if (!(e instanceof SyncError) && !(e instanceof HandshakeRefusal)) this.logger.error(`handshake failed: ${(e as Error)?.stack ?? e}`);
          this.releaseSocket(socket.id);
          next(handshakeError(e));
        },
      );
    });
    this.sweeper = setInterval(() => this.sweep(server), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  private async handshake(socket: SyncSocket): Promise<void> {
    const hs = socket.handshake;
    const ip = resolveClientAddress(hs.address, hs.headers['x-forwarded-for'], this.config.server, this.isTrustedProxy);
    socket.data.clientIp = ip;

    const origin = hs.headers.origin;
    const allowed = this.config.server.corsOrigins;
    if (allowed !== '*' && origin !== undefined && !allowed.includes(origin)) {
      this.metrics.connectionsRefused.inc({ reason: 'origin' });
      this.logger.debug(`handshake from ${ip} refused: origin ${JSON.stringify(String(origin).slice(0, 200))} not allowed`);
      throw new HandshakeRefusal(HANDSHAKE_ERRORS.origin, 'FORBIDDEN', 'this origin is not allowed (ALLOWED_ORIGINS)');
    }

    const session = this.sessions.open(socket.id);
    session.socket = socket;
    socket.data.session = session;
    const ctx: AuthContext = { via: 'handshake', ip, socketId: socket.id };
    const credential = this.handshakeCredential(socket);
    if (credential.kind === 'invalid') {
      this.auth.recordFailure('malformed', ctx, 'unusable token');
      throw new AuthError('invalid token', 'malformed');
    }
    const user = credential.kind === 'token' ? await this.auth.verifyToken(credential.token, ctx) : undefined;
    if (!live(socket, session)) return; // the connection closed meanwhile
    for (const id of await this.limits.takeAddressShared(socket.id, addressKey(ip), !!user)) this.evict(id);
    if (!live(socket, session)) return;
    if (user) {
      await this.limits.takeUserShared(socket.id, user.id);
      if (!live(socket, session)) return;
      socket.data.handshakeUser = user;
      this.watchExpiry(session, user);
    } else {
      this.setDeadline(session, Date.now() + this.config.limits.joinTimeoutMs, 'join');
    }
  }

  /** An unauthenticated socket evicted from its address's slots for an authenticated one (its slot is already released). */
  private evict(socketId: string | undefined): void {
    if (socketId === undefined) return;
    const session = this.sessions.get(socketId);
    if (!session?.socket) return;
    this.clearDeadline(session);
    this.logger.debug(`disconnecting unauthenticated socket ${socketId}: its address is full and an authenticated client needed the slot`);
    disconnectWithReason(session.socket, 'EVICTED', 'this address is at its connection limit and authenticated clients come first: connect with a token');
  }

  /** The first credential present, in the protocol's order: auth.token, Authorization, query.token. */
  private handshakeCredential(socket: SyncSocket) {
    const hs = socket.handshake;
    const auth = hs.auth && typeof hs.auth === 'object' ? (hs.auth as Record<string, unknown>) : {};
    for (const candidate of [auth.token, hs.headers.authorization, hs.query?.token]) {
      const c = this.auth.parseCredential(Array.isArray(candidate) ? candidate[0] : candidate);
      if (c.kind !== 'absent') return c;
    }
    return { kind: 'absent' as const };
  }

  /**
   * Resolves the user of a sync:join: the `token` of the payload, else the handshake's user (or the
   * socket's current user on a re-join), else AUTH_MODE=dev's bare userId. A socket keeps one
   * identity: a join naming another user than the one already authenticated gets FORBIDDEN, as does
   * a `userId` that differs from the token's. Re-joining with a fresh token on the same socket
   * renews its expiry.
   */
  async join(socket: SyncSocket, body: { userId?: unknown; token?: unknown }): Promise<AuthUser> {
    const ctx: AuthContext = { via: 'join', ip: socket.data.clientIp, socketId: socket.id };
    const credential = this.auth.parseCredential(body.token);
    const claimed = parsePayload(JoinUserIdSchema, { userId: body.userId }).userId;

    let user: AuthUser;
    if (credential.kind === 'invalid') {
      this.auth.recordFailure('malformed', ctx, 'unusable token');
      throw new AuthError('invalid token', 'malformed');
    } else if (credential.kind === 'token') {
      user = await this.auth.verifyToken(credential.token, ctx);
    } else {
      const current = socket.data.user ?? socket.data.handshakeUser;
      if (current) {
        if (claimed && claimed !== current.id) {
          this.auth.recordFailure('user_mismatch', ctx, 'userId differs from the authenticated user');
          throw new ForbiddenError('userId does not match the authenticated user');
        }
        if (current.expiresAt !== undefined && current.expiresAt <= Date.now()) {
          this.auth.recordFailure('expired', ctx, 'token expired: re-join with a fresh token');
          throw new AuthError('token expired: join again with a fresh token', 'expired');
        }
        user = current;
      } else {
        user = this.auth.devUser(claimed, ctx);
      }
    }

    if (claimed && claimed !== user.id) {
      this.auth.recordFailure('user_mismatch', ctx, 'userId differs from the token');
      throw new ForbiddenError('userId does not match the token');
    }
    const established = socket.data.user ?? socket.data.handshakeUser;
    if (established && established.id !== user.id) {
      this.auth.recordFailure('user_mismatch', ctx, 'socket already authenticated as another user');
      throw new ForbiddenError('this connection is authenticated as another user: reconnect to change user');
    }
    const session = socket.data.session;
    if (socket.disconnected || !session || session.released) throw new UnauthenticatedError('connection closed');
    await this.limits.takeUserShared(socket.id, user.id);
    if (session.released) throw new UnauthenticatedError('connection closed');
    this.limits.markAuthenticated(socket.id);
    if (session.deadlineKind === 'join') this.clearDeadline(session);
    this.watchExpiry(session, user);
    return user;
  }

  /** Release step of a socket: its deadline is off (the session goes with the gateway's release). */
  release(socketId: string): void {
    const session = this.sessions.get(socketId);
    if (session) this.clearDeadline(session);
  }

  /** Sockets with a session on this node (tests assert this returns to zero). */
  get trackedSockets(): number {
    return this.sessions.size;
  }

  /** Sessions with a pending deadline (join timeout, token expiry; tests). */
  get pendingDeadlines(): number {
    return this.armed.size;
  }

  /**
   * At the token's expiry the socket gets `sync:token_expired` and, TOKEN_EXPIRY_GRACE_MS later, is
   * disconnected, unless a join with a fresh token has moved the expiry meanwhile.
   */
  private watchExpiry(session: SocketSession, user: AuthUser): void {
    session.expiresAt = user.expiresAt;
    if (user.expiresAt === undefined) {
      if (session.deadlineKind !== 'join') this.clearDeadline(session);
      return;
    }
    this.setDeadline(session, user.expiresAt, 'expiry');
  }

  private setDeadline(session: SocketSession, at: number, kind: DeadlineKind): void {
    session.deadline = Math.max(1, at);
    session.deadlineKind = kind;
    this.armed.add(session);
    this.armWheel(session.deadline);
  }

  private clearDeadline(session: SocketSession): void {
    session.deadline = 0;
    this.armed.delete(session);
  }

  /** Arms the one timer for `at` unless it fires earlier already. */
  private armWheel(at: number): void {
    if (this.wheel && this.wheelAt <= at) return;
    if (this.wheel) clearTimeout(this.wheel);
    const now = Date.now();
    const fireAt = Math.max(at, this.lastScan + WHEEL_MIN_GAP_MS);
    this.wheelAt = fireAt;
    this.wheel = setTimeout(() => this.turnWheel(), Math.max(0, Math.min(fireAt - now, MAX_TIMER_MS)));
    this.wheel.unref();
  }

  /** Fires every deadline that has passed, then arms the timer for the next one. */
  private turnWheel(): void {
    this.wheel = undefined;
    this.wheelAt = 0;
    const now = (this.lastScan = Date.now());
    let next = Infinity;
    for (const session of this.armed) {
      if (session.deadline > now) next = Math.min(next, session.deadline);
      else {
        this.clearDeadline(session);
        this.fire(session, now);
        if (session.deadline) next = Math.min(next, session.deadline);
      }
    }
    if (next !== Infinity) this.armWheel(next);
  }

  private fire(session: SocketSession, now: number): void {
    const socket = session.socket as SyncSocket | undefined;
    if (!socket || socket.disconnected || session.released) return;
    switch (session.deadlineKind) {
      case 'join': {
        if (socket.data.user || socket.data.handshakeUser) return;
        const ms = this.config.limits.joinTimeoutMs;
        this.metrics.connectionsRefused.inc({ reason: 'join_timeout' });
        this.logger.debug(`disconnecting socket ${socket.id}: not joined within ${ms} ms`);
        disconnectWithReason(socket, 'JOIN_TIMEOUT', `not authenticated within ${ms} ms of connecting: send sync:join (or a token in the handshake) sooner`);
        return;
      }
      case 'expiry': {
        const grace = this.config.auth.tokenExpiryGraceMs;
        socket.emit(EVENTS.tokenExpired, { code: 'UNAUTHENTICATED', error: 'token expired: join again with a fresh token', graceMs: grace });
        session.deadline = now + grace;
        session.deadlineKind = 'grace';
        this.armed.add(session); // visited again by the turn in progress: it only lowers `next`
        return;
      }
      case 'grace':
        this.logger.log(`disconnecting socket ${socket.id}: token expired and not renewed`);
        socket.disconnect(true);
        return;
      case undefined:
        return;
      default: {
        const unknownKind: never = session.deadlineKind;
        throw new Error(`unknown deadline ${String(unknownKind)}`);
      }
    }
  }

  /** Releases state of sockets the server no longer knows (should never find any). */
  private sweep(server: Server): void {
    const live = server.of('/').sockets;
    // every per-socket record (connection slot included) hangs on the session: releasing the
    // session releases all of it
    let stale = 0;
    for (const session of [...this.sessions.values()]) {
      const socket = session.socket as SyncSocket | undefined;
      if (!live.has(session.id) && (!socket || socket.conn.readyState !== 'open')) {
        this.releaseSocket(session.id);
        stale++;
      }
    }
    if (stale) this.logger.warn(`released ${stale} stale sockets`);
  }

  onModuleDestroy(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.wheel) clearTimeout(this.wheel);
    this.wheel = undefined;
    for (const session of [...this.sessions.values()]) this.releaseSocket(session.id);
  }
}

/** The socket's connection is still open and its session not released (a handshake step may go on). */
function live(socket: SyncSocket, session: SocketSession): boolean {
  return !session.released && open(socket);
}

function open(socket: SyncSocket): boolean {
  return socket.conn.readyState === 'open';
}

/**
 * Tells the client why (`sync:error` `{ code, error }`), then closes the socket. Codes:
 * `JOIN_TIMEOUT` (not authenticated within JOIN_TIMEOUT_MS: reconnect and join at once), `EVICTED`
 * (an unauthenticated socket gave its address's slot to an authenticated client).
 */
function disconnectWithReason(socket: SessionSocket, code: 'JOIN_TIMEOUT' | 'EVICTED', error: string): void {
  if (socket.disconnected) return;
  socket.emit(EVENTS.syncError, { code, error });
  socket.disconnect(true);
}

class HandshakeRefusal extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly detail: string,
  ) {
    super(message);
  }
}

/** The `connect_error` for a refused handshake: `message` is fixed per cause, `data` carries the protocol code. */
function handshakeError(e: unknown): Error & { data?: Record<string, unknown> } {
  let err: Error & { data?: Record<string, unknown> };
  if (e instanceof HandshakeRefusal) {
    err = new Error(e.message);
    err.data = { code: e.code, error: e.detail };
  } else if (e instanceof ConnectionLimitError) {
    err = new Error(e.message);
    err.data = { code: e.code, error: e.message, retryAfterMs: e.retryAfterMs, reason: e.reason };
  } else if (e instanceof SyncError) {
    err = new Error(HANDSHAKE_ERRORS.unauthorized);
    err.data = { code: e.code, error: e.message };
  } else {
    err = new Error(HANDSHAKE_ERRORS.unauthorized);
    err.data = { code: 'UNAUTHENTICATED', error: 'authentication failed' };
  }
  return err;
}
