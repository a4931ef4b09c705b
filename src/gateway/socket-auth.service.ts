import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type { Server } from 'socket.io';
import { EVENTS, ForbiddenError, InvalidPayloadError, SyncError, UnauthenticatedError } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { addressKey, proxyMatcher, resolveClientAddress } from '../limits/client-address';
import { ConnectionLimitError, ConnectionLimitService } from '../limits/connection-limit.service';
import type { SyncSocket } from '../common/socket-context';
import { AuthContext, AuthError, AuthService } from '../auth/auth.service';
import { AuthUser } from '../common/user';

/** setTimeout fires at once for delays above 2^31-1 ms: longer waits are done in steps. */
const MAX_TIMER_MS = 2_147_483_647;
/** How often sockets are checked against the server's list (a safety net; releases normally happen on disconnect). */
const SWEEP_INTERVAL_MS = 60_000;

/** Messages of a refused handshake (`connect_error`); `err.data` carries the protocol code. */
export const HANDSHAKE_ERRORS = {
  unauthorized: 'unauthorized',
  origin: 'origin not allowed',
} as const;

interface SocketState {
  socket: SyncSocket;
  /** Pending token-expiry notice or disconnect. */
  timer?: NodeJS.Timeout;
  /** Disconnects the socket if it has not authenticated within JOIN_TIMEOUT_MS. */
  joinDeadline?: NodeJS.Timeout;
  /** Releases everything when the underlying connection closes before the socket ever connects. */
  onConnClose: () => void;
}

/**
 * Authentication of sockets: the handshake middleware and sync:join. The gateway calls only
 * install / join / onDisconnect, so how users are authenticated can change without touching the
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
 */
@Injectable()
export class SocketAuthService implements OnModuleDestroy {
  private readonly logger = new Logger('SocketAuth');
  private readonly sockets = new Map<string, SocketState>();
  private readonly isTrustedProxy: (ip: string) => boolean;
  private sweeper?: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly auth: AuthService,
    private readonly limits: ConnectionLimitService,
    private readonly metrics: MetricsService,
  ) {
    this.isTrustedProxy = proxyMatcher(config.server.trustedProxies);
  }

  /** Installs the handshake middleware. */
  install(server: Server): void {
    server.use((socket, next) => {
      this.handshake(socket as SyncSocket).then(
        () => next(),
        (e) => {
          if (!(e instanceof SyncError) && !(e instanceof HandshakeRefusal)) this.logger.error(`handshake failed: ${(e as Error)?.stack ?? e}`);
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
    socket.data.connectedAt = Date.now();

    const origin = hs.headers.origin;
    const allowed = this.config.server.corsOrigins;
    if (allowed !== '*' && origin !== undefined && !allowed.includes(origin)) {
      this.metrics.connectionsRefused.inc({ reason: 'origin' });
      this.logger.debug(`handshake from ${ip} refused: origin ${JSON.stringify(String(origin).slice(0, 200))} not allowed`);
      throw new HandshakeRefusal(HANDSHAKE_ERRORS.origin, 'FORBIDDEN', 'this origin is not allowed (ALLOWED_ORIGINS)');
    }

    this.track(socket);
    try {
      const ctx: AuthContext = { via: 'handshake', ip, socketId: socket.id };
      const credential = this.handshakeCredential(socket);
      if (credential.kind === 'invalid') {
        this.auth.recordFailure('malformed', ctx, 'unusable token');
        throw new AuthError('invalid token', 'malformed');
      }
      const user = credential.kind === 'token' ? await this.auth.verifyToken(credential.token, ctx) : undefined;
      if (!this.sockets.has(socket.id)) return; // the connection closed meanwhile
      for (const id of await this.limits.takeAddressShared(socket.id, addressKey(ip), !!user)) this.evict(id);
      if (!this.sockets.has(socket.id)) return; // the connection closed meanwhile
      if (user) {
        await this.limits.takeUserShared(socket.id, user.id);
        if (!this.sockets.has(socket.id)) return; // the connection closed meanwhile
        socket.data.handshakeUser = user;
        this.watchExpiry(socket, user);
      } else {
        this.armJoinDeadline(socket);
      }
    } catch (e) {
      this.release(socket.id);
      throw e;
    }
  }

  /** An unauthenticated socket evicted from its address's slots for an authenticated one. */
  private evict(socketId: string | undefined): void {
    if (socketId === undefined) return;
    const state = this.sockets.get(socketId);
    this.release(socketId);
    if (!state) return;
    this.logger.debug(`disconnecting unauthenticated socket ${socketId}: its address is full and an authenticated client needed the slot`);
    disconnectWithReason(state.socket, 'EVICTED', 'this address is at its connection limit and authenticated clients come first: connect with a token');
  }

  /** A socket that has not authenticated JOIN_TIMEOUT_MS after its handshake is disconnected. */
  private armJoinDeadline(socket: SyncSocket): void {
    const state = this.sockets.get(socket.id);
    if (!state) return;
    const ms = this.config.limits.joinTimeoutMs;
    state.joinDeadline = setTimeout(() => {
      state.joinDeadline = undefined;
      if (socket.data.user || socket.data.handshakeUser || !this.sockets.has(socket.id)) return;
      this.metrics.connectionsRefused.inc({ reason: 'join_timeout' });
      this.logger.debug(`disconnecting socket ${socket.id}: not joined within ${ms} ms`);
      disconnectWithReason(socket, 'JOIN_TIMEOUT', `not authenticated within ${ms} ms of connecting: send sync:join (or a token in the handshake) sooner`);
    }, ms);
    state.joinDeadline.unref();
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
    const claimed = body.userId;
    if (claimed !== undefined && claimed !== null && typeof claimed !== 'string') throw new InvalidPayloadError('userId must be a string');

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
    if (socket.disconnected) throw new UnauthenticatedError('connection closed');
    this.track(socket);
    await this.limits.takeUserShared(socket.id, user.id);
    this.limits.markAuthenticated(socket.id);
    const state = this.sockets.get(socket.id);
    if (state?.joinDeadline) clearTimeout(state.joinDeadline);
    if (state) state.joinDeadline = undefined;
    this.watchExpiry(socket, user);
    return user;
  }

  /** Called when a socket disconnects: releases its connection slots and timers. */
  onDisconnect(socket: SyncSocket): void {
    this.release(socket.id);
  }

  /** Sockets with tracked state (tests assert this returns to zero). */
  get trackedSockets(): number {
    return this.sockets.size;
  }

  private track(socket: SyncSocket): void {
    if (this.sockets.has(socket.id)) return;
    const state: SocketState = { socket, onConnClose: () => this.release(socket.id) };
    this.sockets.set(socket.id, state);
    socket.conn.once('close', state.onConnClose);
    socket.once('disconnect', state.onConnClose);
  }

  private release(socketId: string): void {
    this.limits.release(socketId);
    const state = this.sockets.get(socketId);
    if (!state) return;
    this.sockets.delete(socketId);
    if (state.timer) clearTimeout(state.timer);
    if (state.joinDeadline) clearTimeout(state.joinDeadline);
    state.socket.conn.off('close', state.onConnClose);
    state.socket.off('disconnect', state.onConnClose);
  }

  /**
   * At the token's expiry the socket gets `sync:token_expired` and, TOKEN_EXPIRY_GRACE_MS later, is
   * disconnected, unless a join with a fresh token has moved the expiry meanwhile.
   */
  private watchExpiry(socket: SyncSocket, user: AuthUser): void {
    const state = this.sockets.get(socket.id);
    if (!state) return;
    if (state.timer) clearTimeout(state.timer);
    state.timer = undefined;
    const expiresAt = user.expiresAt;
    if (expiresAt === undefined) return;
    const arm = (at: number, fire: () => void) => {
      const wait = at - Date.now();
      state.timer = setTimeout(() => (at - Date.now() > 0 ? arm(at, fire) : fire()), Math.max(0, Math.min(wait, MAX_TIMER_MS)));
      state.timer.unref();
    };
    const grace = this.config.auth.tokenExpiryGraceMs;
    arm(expiresAt, () => {
      socket.emit(EVENTS.tokenExpired, { code: 'UNAUTHENTICATED', error: 'token expired: join again with a fresh token', graceMs: grace });
      arm(Date.now() + grace, () => {
        this.logger.log(`disconnecting socket ${socket.id}: token expired and not renewed`);
        socket.disconnect(true);
      });
    });
  }

  /** Releases state of sockets the server no longer knows (should never find any). */
  private sweep(server: Server): void {
    const live = server.of('/').sockets;
    const n = this.limits.sweep((id) => live.has(id) || this.sockets.has(id), SWEEP_INTERVAL_MS);
    let stale = 0;
    for (const [id, state] of this.sockets) {
      if (!live.has(id) && state.socket.conn.readyState !== 'open') {
        this.release(id);
        stale++;
      }
    }
    if (n + stale) this.logger.warn(`released ${n + stale} stale connection slots`);
  }

  onModuleDestroy(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    for (const id of [...this.sockets.keys()]) this.release(id);
  }
}

/**
 * Tells the client why (`sync:error` `{ code, error }`), then closes the socket. Codes:
 * `JOIN_TIMEOUT` (not authenticated within JOIN_TIMEOUT_MS: reconnect and join at once), `EVICTED`
 * (an unauthenticated socket gave its address's slot to an authenticated client).
 */
function disconnectWithReason(socket: SyncSocket, code: 'JOIN_TIMEOUT' | 'EVICTED', error: string): void {
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
