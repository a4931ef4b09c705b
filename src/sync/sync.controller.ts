import { Body, Controller, Get, HttpCode, Inject, NotImplementedException, Post, Req, UseGuards } from '@nestjs/common';
import type { Request } from 'express';
import { PayloadTooLargeError } from '@sync/protocol';
import { ChangeBatchRequestSchema, parsePayload } from '@sync/protocol/schemas';
import { CurrentUser, HttpAuthGuard, ServiceAuthGuard } from '../auth/guards/http-auth.guard';
import type { AuthUser } from '../auth/auth.types';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { toFailureAck } from '../common/ack';
import { isPlainObject } from './change.validation';
import { SyncService } from './sync.service';
import { AzureWebPubSubNegotiator } from '../integrations/azure/azure-web-pubsub';

/** The REST edge: server-to-server ingest and the Azure Web PubSub negotiate endpoint. */
@Controller('api')
export class SyncController {
  private negotiator?: AzureWebPubSubNegotiator;

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
      if (changes.length > this.config.limits.maxBatchSize) throw new PayloadTooLargeError(`a batch may hold at most ${this.config.limits.maxBatchSize} changes`);
      const results = await this.sync.apply(changes, { user: { id: 'service', claims: { service: true } }, clientAddress: req.ip, trusted: true });
      const successCount = results.filter((r) => r.success).length;
      return { success: true, results, successCount, failureCount: results.length - successCount };
    } catch (e) {
      return toFailureAck(e, 'POST /api/changes');
    }
  }

  /**
   * `GET /api/negotiate`: for the authenticated caller (never another user), what a Socket.IO client
   * needs to connect through Azure Web PubSub for Socket.IO: `{ url, token, endpoint, path, expiresAt }`.
   */
  @Get('negotiate')
  @UseGuards(HttpAuthGuard)
  async negotiate(@CurrentUser() user: AuthUser) {
    const connectionString = this.config.scale.webPubSubConnectionString;
    if (!connectionString) throw new NotImplementedException('Azure Web PubSub is not configured (WEB_PUBSUB_CONNECTION_STRING)');
    this.negotiator ??= new AzureWebPubSubNegotiator({ connectionString, hub: this.config.scale.webPubSubHub });
    return this.negotiator.negotiate(user.id);
  }
}
