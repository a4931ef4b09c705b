import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { AdminGuard } from '../auth/guards/admin.guard';
import { FeedModule } from '../feed/feed.module';
import { AuditController } from './audit.controller';
import { AuditRepository } from './audit.repository';
import { RetentionService } from './retention.service';

/**
 * The audit trail of refused changes (`_sync_audit`): written by the write path, read by
 * administrators through `GET /api/audit` (filtered, keyset-paged; the operator console pages
 * through it). And retention (RetentionService): the feed, the trail and tombstones older than
 * CHANGE_RETENTION_DAYS are purged.
 */
@Module({
  imports: [AuthModule, FeedModule],
  controllers: [AuditController],
  providers: [AuditRepository, AdminGuard, RetentionService],
  exports: [AuditRepository],
})
export class AuditModule {}
