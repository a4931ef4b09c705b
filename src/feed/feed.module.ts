import { Module } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { ChangeFeedRepository } from './change-feed.repository';
import { ChangeFeedService } from './change-feed.service';
import { DocumentLeases } from './document-leases';
import { DocumentRepository } from './document.repository';
import { FeedWriter } from './feed-writer';
import { LockRepository } from './lock.repository';
import { SYNC_TIMINGS, syncTimings } from './sync.constants';

/**
 * The change feed and the documents behind it: feed positions, reads and repair (replay of stale
 * entries, holes), document writes (compare-and-set), leases, retention, and the mappers between
 * stored and wire shapes. The only module that touches `_sync_feed`, `_sync_changes`, `_sync_commits`,
 * `_sync_locks`, `_sync_tombstones` and the user collections.
 */
@Module({
  providers: [
    { provide: SYNC_TIMINGS, inject: [APP_CONFIG], useFactory: (c: AppConfig) => syncTimings(c.sync.lockTtlMs) },
    ChangeFeedRepository,
    DocumentRepository,
    LockRepository,
    ChangeFeedService,
    DocumentLeases,
    FeedWriter,
  ],
  exports: [SYNC_TIMINGS, ChangeFeedRepository, DocumentRepository, LockRepository, ChangeFeedService, DocumentLeases, FeedWriter],
})
export class FeedModule {}
