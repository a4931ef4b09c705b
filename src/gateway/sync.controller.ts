import { Body, Controller, HttpCode, Inject, Post, Req, UseGuards } from '@nestjs/common';
import type { Request } from 'express';
import { PayloadTooLargeError } from '@sync/protocol';
import { ChangeBatchRequestSchema, parsePayload } from '@sync/protocol/schemas';
import { ServiceAuthGuard } from '../auth/guards/http-auth.guard';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { toFailureAck } from '../common/ack';
import { isPlainObject } from '../sync/change.validation';
import { SyncService } from '../sync/sync.service';

/** The REST edge: server-to-server ingest (the Azure negotiate endpoint is src/integrations/azure). */
@Controller('api')
export class SyncController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly sync: SyncService,
  ) {}

  /**
   * `POST /api/changes { changes }` with the service token (AUTH_SERVICE_TOKEN): same acks and
   * broadcasts as sync:changeBatch. The author is "service"; write rules do not apply to it.
   */
  @Post('changes')
  @HttpCode(200)
  @UseGuards(ServiceAuthGuard)
  async ingest(@Body() body: unknown, @Req() req: Request) {
    try {
      const { changes } = parsePayload(ChangeBatchRequestSchema, isPlainObject(body) ? body : {});
      if (changes.length > this.config.limits.maxBatchSize)
        throw new PayloadTooLargeError(`a batch may hold at most ${this.config.limits.maxBatchSize} changes`);
      const results = await this.sync.apply(changes, { user: { id: 'service', claims: { service: true } }, clientAddress: req.ip, trusted: true });
      const successCount = results.filter((r) => r.success).length;
      return { success: true, results, successCount, failureCount: results.length - successCount };
    } catch (e) {
      return toFailureAck(e, 'POST /api/changes');
    }
  }
}
