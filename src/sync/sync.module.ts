import { Module } from '@nestjs/common';
import { AuditRepository } from '../audit/audit.repository';
import { AuthModule } from '../auth/auth.module';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { PermissionService } from '../permission/permission.service';
import { ChangeFeedRepository } from './change-feed.repository';
import { ChangeFeedService } from './change-feed.service';
import { AllJoinedRouter, ChangeRouter, DeliveryService } from './delivery.service';
import { DocumentRepository } from './document.repository';
import { LockRepository } from './lock.repository';
import { SYNC_TIMINGS, syncTimings } from './sync.constants';
import { SyncGateway } from './sync.gateway';
import { SyncService } from './sync.service';

@Module({
  imports: [AuthModule],
  providers: [
    { provide: SYNC_TIMINGS, inject: [APP_CONFIG], useFactory: (c: AppConfig) => syncTimings(c.sync.lockTtlMs) },
    { provide: ChangeRouter, useClass: AllJoinedRouter },
    PermissionService,
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
