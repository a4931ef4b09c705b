import { INestApplicationContext, Logger } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { MessageMappingProperties } from '@nestjs/websockets';
import { WebSocketsController } from '@nestjs/websockets/web-sockets-controller';
import { from, type Observable } from 'rxjs';
import { mergeAll } from 'rxjs/operators';
import type { Server, ServerOptions, Socket } from 'socket.io';
import { EVENTS } from '@sync/protocol';
import { AppConfig } from '../config/config.schema';
import { DrainService } from '../lifecycle/drain.service';

/** Messages that write: a graceful shutdown waits for these (DrainService). */
const WRITE_EVENTS = new Set<string>([EVENTS.change, EVENTS.changeBatch, EVENTS.mongoUpsert, EVENTS.mongoDelete]);

export type ServerAdapterFactory = (server: Server) => Promise<void> | void;

/** A gateway's message handlers, unbound (they take the socket first), shared by all its sockets. */
interface SharedHandlers {
  handlers: MessageMappingProperties[];
  index: Map<string, number>;
  instance: object;
  transform: (data: unknown) => Observable<unknown>;
}

/**
 * Nest binds every handler of a gateway to each socket (`callback.bind(gateway, socket)`, ten bound
 * functions and handler objects per socket, about 1 KB of an idle socket's heap) before handing them
 * to the adapter. For SyncIoAdapter the per-socket list is skipped: the adapter receives the
 * gateway's own list, shared by all sockets, and calls a handler with the socket as Nest's bound
 * function would. Any other adapter (and a Nest without this method) keeps Nest's own path.
 */
const nestSubscribeMessages = WebSocketsController.prototype.subscribeMessages;
if (typeof nestSubscribeMessages === 'function') {
  WebSocketsController.prototype.subscribeMessages = function (this: WebSocketsController, subscribersMap, client, instance) {
    const adapter = (this as unknown as { config?: { getIoAdapter?: () => unknown } }).config?.getIoAdapter?.();
    if (!(adapter instanceof SyncIoAdapter)) return nestSubscribeMessages.call(this, subscribersMap, client, instance);
    adapter.bindSharedHandlers(client as Socket, subscribersMap, instance, (data) => from(this.pickResult(data as Promise<unknown>)).pipe(mergeAll()));
  };
}

/**
 * Socket.IO on the HTTP server's port at /socket.io, with CORS, payload limits and (when configured)
 * a scale-out adapter so room broadcasts reach sockets on every node.
 */
export class SyncIoAdapter extends IoAdapter {
  private readonly logger = new Logger('SocketIO');
  private readonly extraSetup: ServerAdapterFactory[] = [];
  private drainService?: DrainService | null;
  private handlerIndexCache?: Map<string, number>;
  private readonly shared = new WeakMap<MessageMappingProperties[], SharedHandlers>();

  constructor(
    private readonly appContext: INestApplicationContext,
    private readonly config: AppConfig,
  ) {
    super(appContext);
  }

  /** Registers a hook run on the created server (e.g. the Redis adapter). */
  onServerCreated(fn: ServerAdapterFactory): void {
    this.extraSetup.push(fn);
  }

  /** Graceful shutdown state (absent in an application context without the health module). */
  private get drain(): DrainService | null {
    if (this.drainService === undefined) {
      try {
        this.drainService = this.appContext.get(DrainService, { strict: false });
      } catch {
        this.drainService = null;
      }
    }
    return this.drainService;
  }

  /**
   * One listener per socket for all its messages (`onAny`), dispatching by event name through a
   * table shared by every socket. Nest's own binding builds, for every socket and every handler, an
   * RxJS pipeline (fromEvent, mergeMap, filter, map, takeUntil and their subscribers): about 20 KB of
   * heap per idle socket; a plain listener per handler still costs a closure, its context and an
   * entry of the socket's listener table each (BENCHMARKS.md "Memory per socket"). Same behaviour:
   * the handler's result (a value, a promise or an observable) is the ack, or an emitted event when
   * it has `event`; an event without a handler is ignored, as before.
   */
  override bindMessageHandlers(
    socket: Parameters<IoAdapter['bindMessageHandlers']>[0],
    handlers: MessageMappingProperties[],
    transform: (data: unknown) => Observable<unknown>,
  ): void {
    const index = this.handlerIndex(handlers);
    (socket as Socket).onAny((event: unknown, ...args: unknown[]) => {
      if (typeof event !== 'string') return;
      const i = index.get(event);
      // the shared table holds the position of each message in Nest's (fixed) list of handlers
      const handler = i !== undefined && handlers[i]?.message === event ? handlers[i] : handlers.find((h) => h.message === event);
      if (handler) this.dispatch(socket as Socket, handler, args, transform);
    });
  }

  /**
   * bindMessageHandlers without a per-socket list: `handlers` are the gateway's own (unbound: they
   * take the socket first), the same array for every socket, so their table is built once.
   */
  bindSharedHandlers(socket: Socket, handlers: MessageMappingProperties[], instance: object, makeTransform: (data: unknown) => Observable<unknown>): void {
    let shared = this.shared.get(handlers);
    if (!shared) {
      shared = { handlers, index: new Map(handlers.map((h, i) => [h.message as string, i])), instance, transform: makeTransform };
      this.shared.set(handlers, shared);
    }
    const table = shared;
    socket.onAny((event: unknown, ...args: unknown[]) => {
      if (typeof event !== 'string') return;
      const i = table.index.get(event);
      if (i === undefined) return;
      this.dispatch(socket, table.handlers[i], args, table.transform, table.instance);
    });
  }

  /** Message → position in the handler list, built once for the gateway's list (and again if another list comes). */
  private handlerIndex(handlers: MessageMappingProperties[]): Map<string, number> {
    const cached = this.handlerIndexCache;
    if (cached && cached.size === handlers.length && handlers.every((h, i) => cached.get(h.message as string) === i)) return cached;
    const index = new Map<string, number>(handlers.map((h, i) => [h.message as string, i]));
    this.handlerIndexCache = index;
    return index;
  }

  /** Runs one message's handler; `gateway`: an unbound handler, called on it with the socket first (as Nest binds it). */
  private dispatch(
    socket: Socket,
    handler: MessageMappingProperties,
    args: unknown[],
    transform: (data: unknown) => Observable<unknown>,
    gateway?: object,
  ): void {
    const { message, callback, isAckHandledManually } = handler;
    const { data, ack } = this.mapPayload(args.length === 1 ? args[0] : args);
    const drain = this.drain;
    if (drain?.draining) {
      // shutting down: nothing new starts here; the client retries after reconnecting elsewhere
      if (typeof ack === 'function') (ack as (res: unknown) => void)(drain.refusal());
      return;
    }
    // writes are waited for before the sockets are closed; a read cut short is asked again elsewhere
    const done = WRITE_EVENTS.has(message as string) ? drain?.begin() : undefined;
    let result: Observable<unknown>;
    try {
      result = transform(gateway ? callback.call(gateway, socket, data, ack) : callback(data, ack));
    } catch (e) {
      done?.();
      this.logger.error(`handler of "${String(message)}" failed: ${(e as Error)?.stack ?? String(e)}`);
      return;
    }
    result.subscribe({
      complete: done,
      next: (response) => {
        if (response === null || response === undefined) return;
        const r = response as { event?: string; data?: unknown };
        if (r.event) {
          socket.emit(r.event, r.data);
          return;
        }
        if (!isAckHandledManually && typeof ack === 'function') (ack as (res: unknown) => void)(response);
      },
      error: (e: unknown) => {
        done?.();
        this.logger.error(`handler of "${String(message)}" failed: ${(e as Error)?.stack ?? String(e)}`);
      },
    });
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
        if (this.drain?.draining) return cb('server shutting down', false);
        // refuse new sockets once the global cap is reached (per-user / per-IP limits come later)
        const count = (server?.engine as { clientsCount?: number } | undefined)?.clientsCount ?? 0;
        cb(count >= this.config.limits.maxConnections ? 'server full' : null, count < this.config.limits.maxConnections);
      },
    } as Partial<ServerOptions>);
    this.drain?.attach(server);
    for (const fn of this.extraSetup) {
      Promise.resolve(fn(server)).catch((e) => this.logger.error(`socket.io server setup failed: ${(e as Error).message}`));
    }
    return server;
  }
}
