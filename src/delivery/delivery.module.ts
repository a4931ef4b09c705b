import { Module } from '@nestjs/common';
import { FeedModule } from '../feed/feed.module';
import { DeliveryService } from './delivery.service';

/**
 * Live delivery of applied changes to this node's sockets, in feed order (DeliveryService and its
 * FeedTailer). Its ports are filled from elsewhere: the ChangeRouter by SubscriptionModule (or a
 * user's CHANGE_ROUTER), the optional CLUSTER_BUS by ClusterModule (or a user's bus); both global.
 */
@Module({
  imports: [FeedModule],
  providers: [DeliveryService],
  exports: [DeliveryService],
})
export class DeliveryModule {}
