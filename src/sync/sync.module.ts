import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { FeedModule } from '../feed/feed.module';
import { DeliveryModule } from '../delivery/delivery.module';
import { SyncService } from './sync.service';

/**
 * The write pipeline (SyncService: validate → deduplicate → resolve → authorize → commit →
 * deliver). Delivery is DeliveryModule's.
 * ConflictModule, PermissionModule, SchemasModule and the router (SubscriptionModule) are global.
 */
@Module({
  imports: [FeedModule, AuditModule, DeliveryModule],
  providers: [SyncService],
  exports: [SyncService],
})
export class SyncModule {}
