import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Server } from 'socket.io';
import type { SyncDocument } from '@sync/protocol';
import { MatchBudgetExceededError, type MatchBudget } from '@sync/protocol/query';
import type { AuthUser } from '../common/user';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { PermissionService } from '../permission/permission.service';
import type { FeedEntry } from '../feed/change-feed.repository';
import { ChangeRouter, Recipients } from '../delivery/delivery.ports';
import type { SyncSocket } from '../common/socket-context';
import { Subscription, SubscriptionRegistry } from './subscription.registry';

/** A user's matching budget per second, in per-change budgets (QUERY_MATCH_BUDGET). */
const PER_SECOND_CHANGES = 4;

/** At most one warning per this many milliseconds for each kind of failed match. */
const LOG_EVERY_MS = 10_000;

/**
 * Routes an applied change to this node's sockets: in view to those holding a subscription that
 * matches the document after the change (and whose user may read it), out of view to those whose
 * subscription matched it before (and could read it) but no longer does. A delete goes to those
 * whose subscription matched the document before it. Joined sockets that never subscribed get
 * every change their user may read (compatibility with clients that do not subscribe).
 *
 * Isolation: each subscription is evaluated on its own, and each user's subscriptions share a
 * matching budget per change (QUERY_MATCH_BUDGET work units, see query.glob.ts) and per second
 * (four times that), so neither large documents nor many changes make one user's patterns costly
 * for the node. A subscription over the budget counts as not matching that change; one whose
 * predicate throws is dropped. Both are logged and counted (`sync_subscription_match_failures_total`):
 * neither costs any other socket its delivery.
 */
@Injectable()
export class SubscriptionRouter extends ChangeRouter {
  private readonly logger = new Logger('SubscriptionRouter');
  private readonly lastLog = new Map<string, number>();
  private readonly perSecond = new Map<string, { left: number }>();
  private second = 0;
  /** The clock of the per-second budget (tests set it). */
  now: () => number = Date.now;

  constructor(
    private readonly registry: SubscriptionRegistry,
    private readonly permissions: PermissionService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {
    super();
  }

  route(entry: FeedEntry, server: Server): Recipients {
    const collection = entry.collection;
    const inView: string[] = [];
    const outOfView: string[] = [];
    if (!collection) return { inView, outOfView };
    const before = (entry.before ?? null) as SyncDocument | null;
    const after = entry.operation === 'delete' ? null : ((entry.after ?? null) as SyncDocument | null);

    // one budget per user for this change (before and after images together), within what is left
    // of the user's budget for this second
    const budgets = new Map<string, MatchBudget & { start: number; second: { left: number } }>();
    const perChange = this.config.limits.queryMatchBudget;
    const budgetOf = (sub: Subscription): MatchBudget => {
      const key = this.registry.user(sub.socketId)?.id ?? sub.socketId;
      let b = budgets.get(key);
      if (!b) {
        const second = this.secondBudget(key);
        const left = Math.max(0, Math.min(perChange, second.left));
        budgets.set(key, (b = { left, start: left, second }));
      }
      return b;
    };
    const failed = (sub: Subscription, e: unknown) => this.failed(sub, e, entry);

    // socket id -> bit 1: a subscription matches before, bit 2: one matches after
    const hits = new Map<string, number>();
    if (before) this.registry.matching(collection, before, (s) => hits.set(s.socketId, (hits.get(s.socketId) ?? 0) | 1), budgetOf, failed);
    if (after) this.registry.matching(collection, after, (s) => hits.set(s.socketId, (hits.get(s.socketId) ?? 0) | 2), budgetOf, failed);
    for (const id of this.registry.unsubscribed) hits.set(id, (before ? 1 : 0) | (after ? 2 : 0));
    for (const b of budgets.values()) b.second.left -= b.start - b.left;

    const sockets = server.sockets.sockets;
    for (const [id, bits] of hits) {
      const user = (sockets.get(id) as SyncSocket | undefined)?.data.user;
      if (!user) continue;
      try {
        const readsAfter = (bits & 2) !== 0 && this.readable(user, collection, after);
        if (readsAfter) {
          inView.push(id);
          continue;
        }
        const readBefore = (bits & 1) !== 0 && this.readable(user, collection, before);
        if (!readBefore) continue;
        if (after === null)
          inView.push(id); // a delete of a document the socket had
        else outOfView.push(id);
      } catch (e) {
        // a read rule that cannot be evaluated for this user: this socket gets nothing, the others go on
        this.metrics.subscriptionMatchFailures.inc({ reason: 'read_rule' });
        this.warn('read_rule', `read rule of ${collection} failed for socket ${id} on change #${entry._id}: ${(e as Error).message}`);
      }
    }
    return { inView, outOfView };
  }

  /**
   * What is left of a user's matching budget for the current second (PER_SECOND_CHANGES × the
   * per-change budget): many changes a second cannot multiply one user's cost either.
   */
  private secondBudget(userId: string): { left: number } {
    const second = Math.floor(this.now() / 1000);
    if (second !== this.second) {
      this.second = second;
      this.perSecond.clear(); // a new second: everybody's budget is full again
    }
    let b = this.perSecond.get(userId);
    if (!b) this.perSecond.set(userId, (b = { left: this.config.limits.queryMatchBudget * PER_SECOND_CHANGES }));
    return b;
  }

  private failed(sub: Subscription, e: unknown, entry: FeedEntry): void {
    if (e instanceof MatchBudgetExceededError) {
      this.metrics.subscriptionMatchFailures.inc({ reason: 'budget' });
      this.warn(
        'budget',
        `subscription ${sub.id} of socket ${sub.socketId} (${sub.collection}) exceeded the match budget on change #${entry._id}: not delivered`,
      );
      return;
    }
    this.metrics.subscriptionMatchFailures.inc({ reason: 'error' });
    this.warn(
      'error',
      `subscription ${sub.id} of socket ${sub.socketId} (${sub.collection}) failed on change #${entry._id} and was dropped: ${(e as Error)?.message}`,
    );
    this.registry.remove(sub);
  }

  private warn(kind: string, message: string): void {
    const now = Date.now();
    if (now - (this.lastLog.get(kind) ?? 0) < LOG_EVERY_MS) return;
    this.lastLog.set(kind, now);
    this.logger.warn(message);
  }

  private readable(user: AuthUser, collection: string, doc: SyncDocument | null): boolean {
    return doc !== null && this.permissions.canRead(user, collection, doc);
  }
}
