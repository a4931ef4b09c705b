import { Inject, Logger } from '@nestjs/common';
import {
  ConnectedSocket,
  MessageBody,
  OnGatewayConnection,
  OnGatewayDisconnect,
  OnGatewayInit,
  SubscribeMessage,
  WebSocketGateway,
  WebSocketServer,
} from '@nestjs/websockets';
import type { Server } from 'socket.io';
import { ChangeAck, encodeCursor, EVENTS, FailureAck, LIMITS, PayloadTooLargeError, PingAck, UnauthenticatedError } from '@sync/protocol';
import {
  ChangeBatchRequestSchema,
  GetChangesRequestSchema,
  JoinRequestSchema,
  PingRequestSchema,
  parsePayload,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  UpdateSubscriptionsRequestSchema,
} from '@sync/protocol/schemas';
import { SocketAuthService } from './socket-auth.service';

/** The subscriptions a sync:join may carry, parsed after the join has authenticated the socket. */
const JoinSubscriptionsSchema = JoinRequestSchema.pick({ subscriptions: true });
import type { AuthUser } from '../common/user';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { RateLimitService } from '../limits/rate-limit.service';
import { READ_COST, ReadBudgetService } from '../limits/read-budget.service';
import { toFailureAck } from '../common/ack';
import { isPlainObject } from '../sync/change.validation';
import { ChangeFeedService } from '../feed/change-feed.service';
import { JOINED_ROOM } from '../delivery/delivery.ports';
import { DeliveryService } from '../delivery/delivery.service';
import { SyncSocket, userRoom } from '../common/socket-context';
import { SyncService } from '../sync/sync.service';
import { SubscriptionService } from '../subscription/subscription.service';
import { ConnectionLimitService } from '../limits/connection-limit.service';
import { SocketSessions } from '../common/socket-session';

type AnyAck = object;

/** Reads a payload as an object ({} for anything else: handlers then report what is missing). */
function asObject(body: unknown): Record<string, unknown> {
  return isPlainObject(body) ? body : {};
}

/** What a socket keeps of its handshake's headers, query and credentials once connected: nothing (shared). */
const FORGOTTEN = Object.freeze({}) as Record<string, never>;
const NO_RAW_HEADERS = Object.freeze([]) as unknown as string[];

/**
 * Memory of an idle socket: the HTTP request that opened the connection (its headers, raw headers,
 * query), and the handshake's headers, query and credentials, are read only by the handshake
 * middleware (SocketAuthService, before this runs), yet Socket.IO keeps them for the socket's life
 * (`conn.request`, `socket.handshake`), and Engine.IO's upgrade response keeps the request too (held
 * by a 'close' listener of the TCP socket, out of reach): so the request is emptied of what it holds,
 * then dropped (Socket.IO's documented memory tip). Nothing of ours reads `socket.request` or
 * `socket.handshake.{headers,query,auth}` after the connection (the client address stays on
 * `socket.data.clientIp` and `handshake.address`).
 */
function forgetHandshakeRequest(socket: SyncSocket): void {
  const conn = socket.conn as unknown as { request?: { headers?: unknown; rawHeaders?: unknown; _query?: unknown } | null };
  const req = conn.request;
  if (req) {
    req.headers = FORGOTTEN;
    req.rawHeaders = NO_RAW_HEADERS;
    req._query = FORGOTTEN;
  }
  conn.request = null;
  const hs = socket.handshake;
  hs.headers = FORGOTTEN;
  hs.query = FORGOTTEN;
  hs.auth = FORGOTTEN;
}

/**
 * The socket edge: translates events to service calls and results to acks. No sync logic here.
 */
@WebSocketGateway()
export class SyncGateway implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect {
  private readonly logger = new Logger('SyncGateway');
  @WebSocketServer() server!: Server;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly socketAuth: SocketAuthService,
    private readonly metrics: MetricsService,
    private readonly rateLimit: RateLimitService,
    private readonly sync: SyncService,
    private readonly feed: ChangeFeedService,
    private readonly delivery: DeliveryService,
    private readonly subscriptions: SubscriptionService,
    private readonly readBudget: ReadBudgetService,
    private readonly limits: ConnectionLimitService,
    private readonly sessions: SocketSessions,
  ) {}

  afterInit(server: Server): void {
    this.socketAuth.install(server, (socketId) => this.release(socketId));
    this.delivery.attach(server);
  }

  handleConnection(socket: SyncSocket): void {
    this.metrics.activeConnections.inc();
    forgetHandshakeRequest(socket);
  }

  /** The one disconnect handler: everything the node kept for the socket goes (see release). */
  handleDisconnect(socket: SyncSocket): void {
    this.metrics.activeConnections.dec();
    if (socket.data.user) this.metrics.userLeft(socket.data.user.id);
    this.release(socket.id);
  }

  /**
   * Releases a socket's session, each module's part in this order (idempotent; also run by the
   * handshake for a socket that never connected, and by the safety sweep):
   *  1. auth: its deadline (join timeout, token expiry) is off, nothing fires for it any more;
   *  2. subscriptions: out of the routing indexes (no live change is matched for it), its
   *     bootstrap chain dropped (queued bootstraps end at their first step);
   *  3. limits: its connection slots per address and per user (and the shared ones with Redis);
   *  4. the session itself (its get_changes counter goes with it; a read in flight finishes alone).
   */
  private release(socketId: string): void {
    this.socketAuth.release(socketId);
    this.subscriptions.drop(socketId);
    this.limits.release(socketId);
    this.sessions.close(socketId);
  }

  /** Runs a handler and turns any error into the protocol's failure ack. */
  private async run<T extends AnyAck>(event: string, fn: () => Promise<T> | T): Promise<T | FailureAck> {
    try {
      return await fn();
    } catch (e) {
      return toFailureAck(e, event);
    }
  }

  private requireUser(socket: SyncSocket): AuthUser {
    const user = socket.data.user;
    if (!user) throw new UnauthenticatedError();
    return user;
  }

  /** requireUser for reads: charges `cost` to the user's read budget (1 to the address when not joined). */
  private async readUser(socket: SyncSocket, cost: number): Promise<AuthUser> {
    const user = socket.data.user;
    await this.readBudget.charge({ userId: user?.id, address: socket.data.clientIp }, user ? cost : READ_COST.anonymous);
    if (!user) throw new UnauthenticatedError();
    if (socket.disconnected) throw new UnauthenticatedError('connection closed'); // (the charge may have waited for Redis)
    return user;
  }

  private origin(socket: SyncSocket, user: AuthUser) {
    return { user, clientAddress: socket.data.clientIp, socketId: socket.id };
  }

  @SubscribeMessage(EVENTS.ping)
  ping(@MessageBody() body: unknown): PingAck {
    const now = Date.now();
    // a ping never fails: a payload that does not fit PingRequest is answered without clientTimestamp
    const parsed = PingRequestSchema.safeParse(asObject(body));
    const t = parsed.success ? parsed.data.t : undefined;
    const clientTimestamp = typeof t === 'number' ? t : null;
    return { timestamp: now, clientTimestamp, latency: clientTimestamp === null ? null : now - clientTimestamp };
  }

  @SubscribeMessage(EVENTS.join)
  join(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown) {
    return this.run(EVENTS.join, async () => {
      const req = asObject(body);
      const user = await this.socketAuth.join(socket, req);
      // subscriptions given with the join: all validated before anything changes
      const { subscriptions } = parsePayload(JoinSubscriptionsSchema, { subscriptions: req.subscriptions });
      const specs = subscriptions ? this.subscriptions.compileAll(user, subscriptions, 'filter') : [];
      if (specs.length) await this.readBudget.charge({ userId: user.id }, specs.length * (READ_COST.subscribe + READ_COST.bootstrap), true);
      const previous = socket.data.user;
      if (previous && previous.id !== user.id) {
        this.metrics.userLeft(previous.id);
        await socket.leave(userRoom(previous.id));
        this.subscriptions.drop(socket.id); // another user's subscriptions must not carry over
      }
      if (!previous || previous.id !== user.id) this.metrics.userJoined(user.id);
      socket.data.user = user;
      await socket.join([userRoom(user.id), JOINED_ROOM]);
      if (socket.disconnected) throw new UnauthenticatedError('connection closed'); // released meanwhile: keep nothing
      this.subscriptions.registry.joined(socket.id);
      // never past what this node has delivered live: a change in between reaches the socket live or on catch-up
      const cursor = encodeCursor(this.delivery.safeCursor(await this.feed.head()));
      if (socket.disconnected) throw new UnauthenticatedError('connection closed');
      if (specs.length) this.subscriptions.scheduleBootstrap(socket, this.subscriptions.addAll(socket, user, specs));
      return { success: true as const, userId: user.id, timestamp: Date.now(), cursor };
    });
  }

  @SubscribeMessage(EVENTS.subscribe)
  subscribe(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown) {
    return this.run(EVENTS.subscribe, async () => {
      const user = await this.readUser(socket, READ_COST.subscribe + (asObject(body).bootstrap === false ? 0 : READ_COST.bootstrap));
      const req = parsePayload(SubscribeRequestSchema, body);
      const { sub, count } = await this.subscriptions.subscribe(socket, user, req); // (schedules its bootstrap)
      return { success: true as const, subscriptionId: sub.id, count };
    });
  }

  @SubscribeMessage(EVENTS.unsubscribe)
  unsubscribe(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown) {
    return this.run(EVENTS.unsubscribe, async () => {
      await this.readUser(socket, READ_COST.unsubscribe);
      const req = parsePayload(UnsubscribeRequestSchema, body);
      return { success: true as const, count: this.subscriptions.unsubscribe(socket, req) };
    });
  }

  @SubscribeMessage(EVENTS.updateSubscriptions)
  updateSubscriptions(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown) {
    return this.run(EVENTS.updateSubscriptions, async () => {
      const user = await this.readUser(socket, READ_COST.subscribe);
      const req = parsePayload(UpdateSubscriptionsRequestSchema, body);
      // the new subscriptions (those that bootstrap) are paid for before anything changes
      const { version, added } = await this.subscriptions.replace(socket, user, req, async (n) => {
        await this.readBudget.charge({ userId: user.id }, n * READ_COST.bootstrap);
        if (socket.disconnected) throw new UnauthenticatedError('connection closed');
      });
      this.subscriptions.scheduleBootstrap(socket, added);
      return { success: true as const, version };
    });
  }

  @SubscribeMessage(EVENTS.change)
  change(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown) {
    return this.run(EVENTS.change, async () => {
      const user = this.requireUser(socket);
      await this.rateLimit.consume(user.id, 1);
      const [ack] = await this.sync.apply([body], this.origin(socket, user));
      await this.delivery.settleAcks([ack]); // its cursor never lets the client skip a change
      return ack;
    });
  }

  @SubscribeMessage(EVENTS.changeBatch)
  changeBatch(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown) {
    return this.run(EVENTS.changeBatch, async () => {
      const user = this.requireUser(socket);
      const { changes } = parsePayload(ChangeBatchRequestSchema, asObject(body));
      if (changes.length > this.config.limits.maxBatchSize)
        throw new PayloadTooLargeError(`a batch may hold at most ${this.config.limits.maxBatchSize} changes (got ${changes.length})`);
      if (changes.length === 0) return { success: true as const, results: [], successCount: 0, failureCount: 0 };
      await this.rateLimit.consume(user.id, changes.length);
      const results = await this.sync.apply(changes, this.origin(socket, user));
      await this.delivery.settleAcks(results); // their cursors never let the client skip a change
      const successCount = results.filter((r) => r.success).length;
      return { success: true as const, results, successCount, failureCount: results.length - successCount };
    });
  }

  @SubscribeMessage(EVENTS.getChanges)
  getChanges(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown) {
    return this.run(EVENTS.getChanges, async () => {
      const limit = asObject(body).limit;
      const user = await this.readUser(socket, ReadBudgetService.getChangesCost(typeof limit === 'number' && limit >= 1 ? Math.ceil(limit) : undefined));
      const req = parsePayload(GetChangesRequestSchema, asObject(body));
      const lim = Math.min(req.limit ?? LIMITS.defaultGetChangesLimit, LIMITS.maxGetChangesLimit);
      const session = socket.data.session;
      if (!session) throw new UnauthenticatedError('connection closed');
      const page = await this.readBudget.exclusive(session, async () => {
        const start = await this.feed.startPosition(req.cursor, req.since);
        return this.feed.read(user, start, lim, req.collection ?? undefined);
      });
      const since = typeof req.since === 'number' ? req.since : 0;
      return {
        success: true as const,
        changes: page.changes,
        cursor: encodeCursor(page.position),
        latestTimestamp: page.latestTimestamp || since,
        hasMore: page.hasMore,
      };
    });
  }

  /** Compatibility (Flutter client): an update of query._id with `update` as data. Ack "ok"/"error". */
  @SubscribeMessage(EVENTS.mongoUpsert)
  async mongoUpsert(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown): Promise<'ok' | 'error'> {
    const ack = await this.run(EVENTS.mongoUpsert, async () => {
      const user = this.requireUser(socket);
      const req = asObject(body);
      const query = asObject(req.query);
      await this.rateLimit.consume(user.id, 1);
      const [r] = await this.sync.apply(
        [{ operation: 'update', collection: req.collection, documentId: query._id, data: req.update, changeId: req.patchId ?? undefined }],
        this.origin(socket, user),
      );
      return r;
    });
    return (ack as ChangeAck).success ? 'ok' : 'error';
  }

  /** Compatibility (Flutter client): a delete of query._id. Ack { success } or { success: false, error }. */
  @SubscribeMessage(EVENTS.mongoDelete)
  async mongoDelete(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown) {
    const ack = (await this.run(EVENTS.mongoDelete, async () => {
      const user = this.requireUser(socket);
      const req = asObject(body);
      const query = asObject(req.query);
      await this.rateLimit.consume(user.id, 1);
      const [r] = await this.sync.apply(
        [{ operation: 'delete', collection: req.collection, documentId: query._id, changeId: req.patchId ?? undefined }],
        this.origin(socket, user),
      );
      return r;
    })) as ChangeAck;
    return ack.success ? { success: true } : { success: false, error: ack.error, code: ack.code };
  }
}
