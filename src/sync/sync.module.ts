import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { FeedModule } from '../feed/feed.module';
import { DeliveryService } from './delivery.service';
import { SyncService } from './sync.service';

/**
 * The write pipeline (SyncService: validate → deduplicate → resolve → authorize → commit →
 * deliver) and, until it moves to src/delivery, the live delivery of applied changes.
 * ConflictModule, PermissionModule, SchemasModule and the router (SubscriptionModule) are global.
 */
@Module({
  imports: [FeedModule, AuditModule],
  providers: [DeliveryService, SyncService],
  exports: [SyncService, DeliveryService],
})
export class SyncModule {}
