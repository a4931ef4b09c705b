import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';

/**
 * Who may run a bootstrap, and when: each socket's bootstraps run one after another (in the order
 * they were asked for), and each database read of a subscription (a page of a bootstrap, the
 * count a subscribe answers with) takes one of the node's MAX_CONCURRENT_BOOTSTRAPS slots for the
 * time of the read only (not while waiting for the client to take the previous page, so a client
 * that stops reading never holds a slot).
 *
 * Slots are handed out fairly: waiting reads queue per user, and a freed slot goes to the next
 * user in turn, so a user with a hundred reads queued delays another user's read by at most one
 * read per slot.
 *
 * Queued bootstraps are closures (a socket holds at most MAX_SUBSCRIPTIONS_PER_SOCKET of them, and
 * the read budget bounds how fast they come); a bootstrap whose socket or subscription went away
 * ends at its first step.
 */
@Injectable()
export class BootstrapScheduler {
  private readonly logger = new Logger('Bootstrap');
  private running = 0;
  /** Waiting reads per user, and the users with waiting reads in turn order. */
  private readonly waiting = new Map<string, (() => void)[]>();
  private waitingCount = 0;
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

  /** Runs one database read for `userId` in a node slot (waiting for one, users in turn). */
  async withSlot<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    if (this.running < this.config.limits.maxConcurrentBootstraps) this.running++;
    else {
      // the slot is handed over by release()
      await new Promise<void>((resolve) => {
        const q = this.waiting.get(userId);
        if (q) q.push(resolve);
        else this.waiting.set(userId, [resolve]);
        this.waitingCount++;
      });
    }
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private release(): void {
    // the user first in turn gets the slot, then goes to the back of the turn order
    const first = this.waiting.entries().next();
    if (first.done) {
      this.running--;
      return;
    }
    const [userId, q] = first.value;
    const resolve = q.shift()!;
    this.waiting.delete(userId);
    if (q.length) this.waiting.set(userId, q);
    this.waitingCount--;
    resolve();
  }

  /** For tests and /stats. */
  stats(): { running: number; waiting: number; sockets: number } {
    return { running: this.running, waiting: this.waitingCount, sockets: this.chains.size };
  }
}
