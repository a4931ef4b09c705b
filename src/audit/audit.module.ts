import { Module } from '@nestjs/common';
import { AuditRepository } from './audit.repository';

/** The audit trail of refused changes (`_sync_audit`): written by the write path, purged by retention. */
@Module({
  providers: [AuditRepository],
  exports: [AuditRepository],
})
export class AuditModule {}
