import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { SocketSessions } from '../common/socket-session';

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
 * the read budget bounds how fast they come), chained on the socket's session
 * (`SocketSession.bootstraps`, gone with the session); a bootstrap whose socket or subscription went
 * away ends at its first step.
 */
@Injectable()
export class BootstrapScheduler {
  private readonly logger = new Logger('Bootstrap');
  private running = 0;
  /** Waiting reads per user, and the users with waiting reads in turn order. */
  private readonly waiting = new Map<string, (() => void)[]>();
  private waitingCount = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly sessions: SocketSessions = new SocketSessions(),
  ) {}

  /** Runs `job` after the socket's earlier bootstraps (at once for a socket already released: it ends at its first step). */
  enqueue(socketId: string, job: () => Promise<void>): void {
    const session = this.sessions.get(socketId);
    const prev = session?.bootstraps ?? Promise.resolve();
    const next = prev.then(job).catch((e) => this.logger.warn(`bootstrap failed: ${(e as Error).message}`));
    if (!session) return;
    session.bootstraps = next;
    void next.then(() => {
      if (session.bootstraps === next) session.bootstraps = undefined;
    });
  }

  /** Release step of a socket: its queued bootstraps end at their first step (the socket is gone); the chain goes with the session. */
  forget(socketId: string): void {
    const session = this.sessions.get(socketId);
    if (session) session.bootstraps = undefined;
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
    let sockets = 0;
    for (const s of this.sessions.values()) if (s.bootstraps) sockets++;
    return { running: this.running, waiting: this.waitingCount, sockets };
  }
}
