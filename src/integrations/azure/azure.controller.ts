import { Controller, Get, Inject, NotImplementedException, UseGuards } from '@nestjs/common';
import { CurrentUser, HttpAuthGuard } from '../../auth/guards/http-auth.guard';
import type { AuthUser } from '../../common/user';
import { APP_CONFIG } from '../../config/config.module';
import { AppConfig } from '../../config/config.schema';
import { AzureWebPubSubNegotiator } from './azure-web-pubsub';

/** `GET /api/negotiate`: the Azure Web PubSub for Socket.IO side of the REST edge. */
@Controller('api')
export class AzureNegotiateController {
  private negotiator?: AzureWebPubSubNegotiator;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

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
