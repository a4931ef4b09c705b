import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { ChangeFeedRepository } from '../feed/change-feed.repository';
import { DocumentRepository } from '../feed/document.repository';
import { LockRepository } from '../feed/lock.repository';
import { AuditRepository } from './audit.repository';

/**
 * Retention (CHANGE_RETENTION_DAYS): feed entries, audit records and tombstones older than the
 * window are purged, and leases expired for an hour are dropped; at start and every
 * RETENTION_SWEEP_INTERVAL_MS. A cursor older than what was purged is answered CURSOR_EXPIRED by
 * the feed's readers.
 */
@Injectable()
export class RetentionService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('ChangeFeed');
  private timer?: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly feed: ChangeFeedRepository,
    private readonly docs: DocumentRepository,
    private readonly locks: LockRepository,
    private readonly audit: AuditRepository,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(
      () => void this.sweep().catch((e) => this.logger.warn(`retention sweep failed: ${(e as Error).message}`)),
      this.config.sync.retentionSweepIntervalMs,
    );
    this.timer.unref();
    void this.sweep().catch(() => undefined);
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  async sweep(): Promise<void> {
    const cutoff = new Date(Date.now() - this.config.sync.changeRetentionDays * 86_400_000);
    const feed = await this.feed.purge(cutoff);
    const audit = await this.audit.purge(cutoff);
    const tombs = await this.docs.purgeTombstones(cutoff);
    await this.locks.purgeExpired(new Date(Date.now() - 3_600_000));
    if (feed || audit || tombs) this.logger.log(`retention: purged ${feed} feed entries, ${audit} audit records, ${tombs} tombstones`);
  }
}
