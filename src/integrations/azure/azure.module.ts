import { Module } from '@nestjs/common';
import { AuthModule } from '../../auth/auth.module';
import { AzureNegotiateController } from './azure.controller';

/**
 * Azure Web PubSub for Socket.IO: the negotiate endpoint. The Socket.IO server is handed to the
 * service at boot (`useAzureWebPubSub` in src/bootstrap.ts) when WEB_PUBSUB_CONNECTION_STRING is set.
 */
@Module({
  imports: [AuthModule],
  controllers: [AzureNegotiateController],
})
export class AzureModule {}
