import { Module } from '@nestjs/common';
import { AuditRepository } from '../audit/audit.repository';
import { AuthModule } from '../auth/auth.module';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { SubscriptionRegistry } from '../subscription/subscription.registry';
import { SubscriptionRouter } from '../subscription/subscription.router';
import { SubscriptionService } from '../subscription/subscription.service';
import { BootstrapScheduler } from '../subscription/bootstrap.scheduler';
import { ChangeFeedRepository } from './change-feed.repository';
import { ChangeFeedService } from './change-feed.service';
import { ChangeRouter, DeliveryService } from './delivery.service';
import { DocumentRepository } from './document.repository';
import { LockRepository } from './lock.repository';
import { SYNC_TIMINGS, syncTimings } from './sync.constants';
import { SyncGateway } from './sync.gateway';
import { SyncController } from './sync.controller';
import { SyncService } from './sync.service';

/**
 * Provide your own ChangeRouter under this token (in a global module passed to createApp's
 * `extensions`) to replace the subscription router (docs/EXTENDING.md).
 */
export const CHANGE_ROUTER = Symbol('CHANGE_ROUTER');

@Module({
  imports: [AuthModule],
  controllers: [SyncController],
  providers: [
    { provide: SYNC_TIMINGS, inject: [APP_CONFIG], useFactory: (c: AppConfig) => syncTimings(c.sync.lockTtlMs) },
    // subscriptions + read rules decide who receives a change (PermissionService: the global PermissionModule)
    { provide: SubscriptionRegistry, useFactory: () => new SubscriptionRegistry() },
    SubscriptionRouter,
    {
      provide: ChangeRouter,
      inject: [SubscriptionRouter, { token: CHANGE_ROUTER, optional: true }],
      useFactory: (subscriptions: SubscriptionRouter, custom?: ChangeRouter) => custom ?? subscriptions,
    },
    SubscriptionService,
    BootstrapScheduler,
    AuditRepository,
    ChangeFeedRepository,
    DocumentRepository,
    LockRepository,
    ChangeFeedService,
    DeliveryService,
    SyncService,
    SyncGateway,
  ],
  exports: [SyncService, ChangeFeedService, DocumentRepository, DeliveryService],
})
export class SyncModule {}
