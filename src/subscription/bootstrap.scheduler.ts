import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';

/**
 * Who may run a bootstrap, and when: each socket's bootstraps run one after another (in the order
 * they were asked for), and each page read from the database takes one of the node's
 * MAX_CONCURRENT_BOOTSTRAPS slots for the time of the read only (not while waiting for the client
 * to take the previous page, so a client that stops reading never holds a slot).
 *
 * Queued bootstraps are closures (a socket holds at most MAX_SUBSCRIPTIONS_PER_SOCKET of them, and
 * the read budget bounds how fast they come); a bootstrap whose socket or subscription went away
 * ends at its first step.
 */
@Injectable()
export class BootstrapScheduler {
  private readonly logger = new Logger('Bootstrap');
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly chains = new Map<string, Promise<void>>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  /** Runs `job` after the socket's earlier bootstraps. */
  enqueue(socketId: string, job: () => Promise<void>): void {
    const prev = this.chains.get(socketId) ?? Promise.resolve();
    const next = prev.then(job).catch((e) => this.logger.warn(`bootstrap failed: ${(e as Error).message}`));
    this.chains.set(socketId, next);
    void next.then(() => {
      if (this.chains.get(socketId) === next) this.chains.delete(socketId);
    });
  }

  /** Runs one database read of a bootstrap in a node slot (waiting for one, first come first served). */
  async withSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running < this.config.limits.maxConcurrentBootstraps) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve)); // the slot is handed over
    try {
      return await fn();
    } finally {
      const nextInLine = this.waiting.shift();
      if (nextInLine) nextInLine();
      else this.running--;
    }
  }

  /** For tests and /stats. */
  stats(): { running: number; waiting: number; sockets: number } {
    return { running: this.running, waiting: this.waiting.length, sockets: this.chains.size };
  }
}
