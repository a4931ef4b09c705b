import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { DeliveryModule } from '../delivery/delivery.module';
import { FeedModule } from '../feed/feed.module';
import { SyncModule } from '../sync/sync.module';
import { SocketAuthService } from './socket-auth.service';
import { SyncController } from './sync.controller';
import { SyncGateway } from './sync.gateway';

/**
 * The edge: the Socket.IO gateway (SyncGateway), the handshake that composes authentication and
 * connection limits (SocketAuthService), and the REST ingest (`POST /api/changes`). It translates
 * between sockets or requests and the services, nothing more.
 */
@Module({
  imports: [AuthModule, SyncModule, FeedModule, DeliveryModule],
  controllers: [SyncController],
  providers: [SocketAuthService, SyncGateway],
  exports: [SyncGateway],
})
export class GatewayModule {}
