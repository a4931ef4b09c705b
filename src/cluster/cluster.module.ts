import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Global, Logger, Module } from '@nestjs/common';
import { getConnectionToken } from '@nestjs/mongoose';
import type { Connection } from 'mongoose';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { CLUSTER_BUS } from '../delivery/delivery.ports';
import { deriveBusKey } from './cluster.codec';
import { RedisClusterBus } from './redis-cluster-bus';

/** The Redis channel of one deployment: nodes sharing a database share it. */
export function clusterChannel(prefix: string, dbName: string): string {
  return `${prefix}:${dbName}:changes`;
}

/** Unique per application instance (two apps in one process, as in the tests, differ). */
export function makeNodeId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/**
 * Provides CLUSTER_BUS when REDIS_URL is set (a RedisClusterBus on the channel
 * `<REDIS_CHANNEL_PREFIX>:<database name>:changes`), nothing otherwise: DeliveryService injects it
 * optionally; without it, each node still delivers the other nodes' changes, from the feed, at
 * DELIVERY_POLL_INTERVAL_MS.
 */
@Global()
@Module({
  providers: [
    {
      provide: CLUSTER_BUS,
      inject: [APP_CONFIG, MetricsService, getConnectionToken()],
      useFactory: (config: AppConfig, metrics: MetricsService, connection: Connection) => {
        const url = config.scale.redisUrl;
        if (!url) return null;
        const dbName = connection.db?.databaseName ?? connection.name ?? 'default';
        const channel = clusterChannel(config.scale.redisChannelPrefix, dbName);
        if (config.serverSecret.source === 'development')
          new Logger('ClusterBus').warn(
            'the cluster bus is signed with a development key: set SERVER_SECRET (or AUTH_JWT_SECRET) so that only your nodes can publish on it',
          );
        return new RedisClusterBus({
          url,
          channel,
          signingKey: deriveBusKey(config.serverSecret.value, channel),
          nodeId: makeNodeId(),
          maxMessageBytes: config.scale.redisMaxMessageBytes,
          metrics,
        });
      },
    },
  ],
  exports: [CLUSTER_BUS],
})
export class ClusterModule {}
