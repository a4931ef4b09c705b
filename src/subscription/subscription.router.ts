import { Injectable } from '@nestjs/common';
import type { Server } from 'socket.io';
import type { SyncDocument } from '@sync/protocol';
import type { AuthUser } from '../common/user';
import { PermissionService } from '../permission/permission.service';
import type { FeedEntry } from '../feed/change-feed.repository';
import { ChangeRouter, Recipients } from '../sync/delivery.service';
import type { SyncSocket } from '../common/socket-context';
import { SubscriptionRegistry } from './subscription.registry';

/**
 * Routes an applied change to this node's sockets: in view to those holding a subscription that
 * matches the document after the change (and whose user may read it), out of view to those whose
 * subscription matched it before (and could read it) but no longer does. A delete goes to those
 * whose subscription matched the document before it. Joined sockets that never subscribed get
 * every change their user may read (compatibility with clients that do not subscribe).
 */
@Injectable()
export class SubscriptionRouter extends ChangeRouter {
  constructor(
    private readonly registry: SubscriptionRegistry,
    private readonly permissions: PermissionService,
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

    // socket id -> bit 1: a subscription matches before, bit 2: one matches after
    const hits = new Map<string, number>();
    if (before) this.registry.matching(collection, before, (s) => hits.set(s.socketId, (hits.get(s.socketId) ?? 0) | 1));
    if (after) this.registry.matching(collection, after, (s) => hits.set(s.socketId, (hits.get(s.socketId) ?? 0) | 2));
    for (const id of this.registry.unsubscribed) hits.set(id, (before ? 1 : 0) | (after ? 2 : 0));

    const sockets = server.sockets.sockets;
    for (const [id, bits] of hits) {
      const user = (sockets.get(id) as SyncSocket | undefined)?.data.user;
      if (!user) continue;
      const readsAfter = (bits & 2) !== 0 && this.readable(user, collection, after);
      if (readsAfter) {
        inView.push(id);
        continue;
      }
      const readBefore = (bits & 1) !== 0 && this.readable(user, collection, before);
      if (!readBefore) continue;
      if (after === null) inView.push(id); // a delete of a document the socket had
      else outOfView.push(id);
    }
    return { inView, outOfView };
  }

  private readable(user: AuthUser, collection: string, doc: SyncDocument | null): boolean {
    return doc !== null && this.permissions.canRead(user, collection, doc);
  }
}
