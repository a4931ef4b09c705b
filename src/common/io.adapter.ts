import { INestApplicationContext, Logger } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { Server, ServerOptions } from 'socket.io';
import { AppConfig } from '../config/config.schema';

export type ServerAdapterFactory = (server: Server) => Promise<void> | void;

/**
 * Socket.IO on the HTTP server's port at /socket.io, with CORS, payload limits and (when configured)
 * a scale-out adapter so room broadcasts reach sockets on every node.
 */
export class SyncIoAdapter extends IoAdapter {
  private readonly logger = new Logger('SocketIO');
  private readonly extraSetup: ServerAdapterFactory[] = [];

  constructor(
    app: INestApplicationContext,
    private readonly config: AppConfig,
  ) {
    super(app);
  }

  /** Registers a hook run on the created server (e.g. the Redis adapter). */
  onServerCreated(fn: ServerAdapterFactory): void {
    this.extraSetup.push(fn);
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    const cors = this.config.server.corsOrigins;
    const server: Server = super.createIOServer(port, {
      ...options,
      path: '/socket.io',
      transports: ['websocket', 'polling'],
      maxHttpBufferSize: this.config.limits.maxHttpBufferSize,
      pingInterval: 25_000,
      pingTimeout: 20_000,
      connectTimeout: 15_000,
      cors: { origin: cors === '*' ? true : cors, credentials: cors !== '*' },
      allowRequest: (req, cb) => {
        // refuse new sockets once the global cap is reached (per-user / per-IP limits come later)
        const count = (server?.engine as { clientsCount?: number } | undefined)?.clientsCount ?? 0;
        cb(count >= this.config.limits.maxConnections ? 'server full' : null, count < this.config.limits.maxConnections);
      },
    } as Partial<ServerOptions>);
    for (const fn of this.extraSetup) {
      Promise.resolve(fn(server)).catch((e) => this.logger.error(`socket.io server setup failed: ${(e as Error).message}`));
    }
    return server;
  }
}
