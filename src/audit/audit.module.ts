import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { AdminGuard } from '../auth/guards/admin.guard';
import { AuditController } from './audit.controller';
import { AuditRepository } from './audit.repository';

/**
 * The audit trail of refused changes (`_sync_audit`): written by the write path, purged by the
 * feed's retention, read by administrators through `GET /api/audit` (filtered, keyset-paged; the
 * operator console pages through it).
 */
@Module({
  imports: [AuthModule],
  controllers: [AuditController],
  providers: [AuditRepository, AdminGuard],
  exports: [AuditRepository],
})
export class AuditModule {}
