import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { FeedModule } from '../feed/feed.module';
import { DeliveryModule } from '../delivery/delivery.module';
import { ChangeDecider } from './change-decider';
import { SyncService } from './sync.service';

/**
 * The write pipeline (SyncService: validate → deduplicate → resolve → authorize → commit →
 * deliver). Delivery is DeliveryModule's.
 * ConflictModule, PermissionModule, SchemasModule and the router (SubscriptionModule) are global.
 */
@Module({
  imports: [FeedModule, AuditModule, DeliveryModule],
  providers: [SyncService, ChangeDecider],
  exports: [SyncService],
})
export class SyncModule {}
