import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Server } from 'socket.io';
import { ErrorCode, EVENTS, FailureAck, ShutdownNotice } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';

/** Spread of the `retryAfterMs` hint sent with `sync:shutdown`, so a node's clients do not all come back at once. */
export const SHUTDOWN_RECONNECT_SPREAD_MS = 2_000;

/**
 * Graceful shutdown of a node (a rolling update, a scale-in): see `drain()`. Until `drain()` is
 * called it only counts the socket messages being handled (the adapter reports them).
 */
@Injectable()
export class DrainService {
  private readonly logger = new Logger('Drain');
  private server?: Server;
  private drainingSince?: number;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  /** The Socket.IO server whose sockets are drained (set by the adapter when it creates it). */
  attach(server: Server): void {
    this.server = server;
  }

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  /** Writes being handled right now (socket messages and HTTP requests). */
  get pending(): number {
    return this.inFlight;
  }

  /** Step 1 (and 2) of `drain()` on its own: /ready 503, no new sockets, no new messages. */
  stopAccepting(): void {
    this.drainingSince ??= Date.now();
  }

  /** The ack of a message that arrives once draining began: retryable, nothing was done. */
  refusal(): FailureAck {
    return { success: false, code: ErrorCode.UNAVAILABLE, error: 'This server is shutting down: nothing was done, retry on another one', retryAfterMs: 0 };
  }

  /** Counts a write from its arrival until its ack is ready (or it failed). */
  begin(): () => void {
    this.inFlight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.inFlight--;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
  }

  private idle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => {
          this.idleWaiters = this.idleWaiters.filter((w) => w !== onIdle);
          resolve(false);
        },
        Math.max(0, timeoutMs),
      );
      const onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(onIdle);
    });
  }

  /**
   * Steps 1-4 of a graceful shutdown (the caller then closes the application: the bus, the HTTP
   * server, the database):
   * 1. `/ready` answers 503 and new Socket.IO connections are refused (the load balancer and the
   *    clients move to other nodes);
   * 2. messages arriving from now on are answered `UNAVAILABLE` (retryable: the client keeps them in
   *    its outbox and sends them again after reconnecting elsewhere);
   * 3. the writes already being handled finish (their acks go out, their changes are delivered; a
   *    read cut short is simply asked again on another node);
   * 4. every socket gets `sync:shutdown { reason: 'server_shutdown', retryAfterMs }` and is
   *    disconnected; the client reconnects (to another node) and catches up from its cursor.
   * Bounded by `budgetMs` (a part of SHUTDOWN_GRACE_MS): what is still running then is left to the
   * crash-safe write path (an unacknowledged change is retried by its client).
   */
  async drain(budgetMs = this.config.server.shutdownGraceMs * 0.6): Promise<{ waitedMs: number; finished: boolean; sockets: number }> {
    this.stopAccepting();
    const started = Date.now();
    this.logger.log(`draining: /ready is 503, new sockets refused, ${this.inFlight} write(s) in flight`);
    const finished = await this.idle(budgetMs);
    if (!finished) this.logger.warn(`drain: ${this.inFlight} write(s) still running after ${budgetMs} ms; disconnecting anyway`);
    let sockets = 0;
    if (this.server) {
      for (const socket of this.server.of('/').sockets.values()) {
        const notice: ShutdownNotice = { reason: 'server_shutdown', retryAfterMs: Math.floor(Math.random() * SHUTDOWN_RECONNECT_SPREAD_MS) };
        socket.emit(EVENTS.shutdown, notice);
        // close(true) after the notice: Socket.IO writes the notice and the disconnect packet in order
        socket.disconnect(true);
        sockets++;
      }
    }
    const waitedMs = Date.now() - started;
    this.logger.log(`drained in ${waitedMs} ms: ${sockets} socket(s) disconnected`);
    return { waitedMs, finished, sockets };
  }
}
