import { Global, Module } from '@nestjs/common';
import { FeedModule } from '../feed/feed.module';
import { CHANGE_ROUTER, ChangeRouter } from '../delivery/delivery.ports';
import { SocketSessions } from '../common/socket-session';
import { BootstrapScheduler } from './bootstrap.scheduler';
import { SubscriptionRegistry } from './subscription.registry';
import { SubscriptionRouter } from './subscription.router';
import { SubscriptionService } from './subscription.service';

/**
 * Subscriptions: the registry of each socket's queries, their bootstrap (first page, then the feed
 * from its cursor), and the router that decides which sockets receive a live change (the
 * `ChangeRouter` port of delivery; a user's CHANGE_ROUTER replaces it). Global, so delivery finds
 * its router without importing this module.
 */
@Global()
@Module({
  imports: [FeedModule],
  providers: [
    // subscriptions + read rules decide who receives a change (PermissionService: the global PermissionModule)
    { provide: SubscriptionRegistry, inject: [SocketSessions], useFactory: (sessions: SocketSessions) => new SubscriptionRegistry(sessions) },
    SubscriptionRouter,
    {
      provide: ChangeRouter,
      inject: [SubscriptionRouter, { token: CHANGE_ROUTER, optional: true }],
      useFactory: (subscriptions: SubscriptionRouter, custom?: ChangeRouter) => custom ?? subscriptions,
    },
    SubscriptionService,
    BootstrapScheduler,
  ],
  exports: [SubscriptionService, ChangeRouter],
})
export class SubscriptionModule {}
