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
import { EVENTS, FailureAck, PingAck, UnauthenticatedError } from '@sync/protocol';
import { SocketAuthService } from '../auth/socket-auth.service';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../health/metrics.service';
import { toFailureAck } from '../common/ack';
import { SyncSocket, userRoom } from './socket-context';

type AnyAck = Record<string, unknown> | FailureAck;

@WebSocketGateway()
export class SyncGateway implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect {
  private readonly logger = new Logger('SyncGateway');
  @WebSocketServer() server!: Server;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly socketAuth: SocketAuthService,
    private readonly metrics: MetricsService,
  ) {}

  afterInit(server: Server): void {
    this.socketAuth.install(server);
  }

  handleConnection(socket: SyncSocket): void {
    this.metrics.activeConnections.inc();
  }

  handleDisconnect(socket: SyncSocket): void {
    this.metrics.activeConnections.dec();
    if (socket.data.user) this.metrics.userLeft(socket.data.user.id);
    this.socketAuth.onDisconnect(socket);
  }

  /** Runs a handler and turns any error into the protocol's failure ack. */
  private async run<T extends AnyAck>(event: string, fn: () => Promise<T> | T): Promise<T | FailureAck> {
    try {
      return await fn();
    } catch (e) {
      return toFailureAck(e, event);
    }
  }

  private requireUser(socket: SyncSocket) {
    const user = socket.data.user;
    if (!user) throw new UnauthenticatedError();
    return user;
  }

  @SubscribeMessage(EVENTS.ping)
  ping(@MessageBody() body: unknown): PingAck {
    const now = Date.now();
    const t = body && typeof body === 'object' ? (body as { t?: unknown }).t : undefined;
    const clientTimestamp = typeof t === 'number' && Number.isFinite(t) ? t : null;
    return { timestamp: now, clientTimestamp, latency: clientTimestamp === null ? null : now - clientTimestamp };
  }

  @SubscribeMessage(EVENTS.join)
  join(@ConnectedSocket() socket: SyncSocket, @MessageBody() body: unknown) {
    return this.run(EVENTS.join, async () => {
      const req = body && typeof body === 'object' ? (body as { userId?: unknown; token?: unknown }) : {};
      const user = await this.socketAuth.join(socket, req);
      if (socket.data.user && socket.data.user.id !== user.id) this.metrics.userLeft(socket.data.user.id);
      if (!socket.data.user || socket.data.user.id !== user.id) this.metrics.userJoined(user.id);
      socket.data.user = user;
      await socket.join(userRoom(user.id));
      return { success: true as const, userId: user.id, timestamp: Date.now(), cursor: '' };
    });
  }

  protected ensureJoined(socket: SyncSocket) {
    return this.requireUser(socket);
  }
}
