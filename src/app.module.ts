import { DynamicModule, Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { ClusterModule } from './cluster/cluster.module';
import { APP_CONFIG, ConfigModule } from './config/config.module';
import { AppConfig } from './config/config.schema';
import { DatabaseModule } from './database/database.module';
import { FeedModule } from './feed/feed.module';
import { GatewayModule } from './gateway/gateway.module';
import { HealthModule } from './health/health.module';
import { AzureModule } from './integrations/azure/azure.module';
import { ConflictModule } from './conflict/conflict.module';
import { ConsoleModule } from './console/console.module';
import { LifecycleModule } from './lifecycle/lifecycle.module';
import { LimitsModule } from './limits/limits.module';
import { MetricsModule } from './metrics/metrics.module';
import { PermissionModule } from './permission/permission.module';
import { SchemasModule } from './schemas/schemas.module';
import { SubscriptionModule } from './subscription/subscription.module';
import { SyncModule } from './sync/sync.module';
import { SocketSessionsModule } from './common/socket-session';
import { TelemetryModule } from './telemetry/telemetry.module';
import { AppExtension, extensionTokens } from './app.extensions';
import { CONFLICT_RESOLVER } from './conflict/conflict.types';
import { CLUSTER_BUS } from './delivery/delivery.ports';
import { randomUUID } from 'node:crypto';

const QUIET_PATHS = new Set(['/health', '/ready', '/metrics']);

@Module({})
export class AppModule {
  /**
   * The whole application; `config` is validated from the environment when not given (tests pass one).
   * `extensions` are the user's own modules (docs/EXTENDING.md): one that provides CONFLICT_RESOLVER or
   * CLUSTER_BUS replaces the built-in module that would.
   */
  static forRoot(config?: AppConfig, extensions: AppExtension[] = []): DynamicModule {
    const replaced = extensionTokens(extensions);
    return {
      module: AppModule,
      imports: [
        ...extensions,
        ConfigModule.forRoot(config),
        LoggerModule.forRootAsync({
          inject: [APP_CONFIG],
          useFactory: (cfg: AppConfig) => ({
            pinoHttp: {
              level: cfg.server.logLevel,
              genReqId: (req) => (req.headers['x-request-id'] as string) || randomUUID(),
              redact: {
                paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]', 'req.query.token', '*.token', 'token'],
                censor: '[redacted]',
              },
              autoLogging: { ignore: (req) => QUIET_PATHS.has((req.url ?? '').split('?')[0]) },
              transport: cfg.server.logPretty ? { target: 'pino-pretty', options: { singleLine: true } } : undefined,
            },
          }),
        }),
        DatabaseModule,
        MetricsModule,
        SocketSessionsModule,
        LifecycleModule,
        AuthModule,
        LimitsModule,
        ...(replaced.has(CONFLICT_RESOLVER) ? [] : [ConflictModule]),
        HealthModule,
        PermissionModule,
        SchemasModule,
        ...(replaced.has(CLUSTER_BUS) ? [] : [ClusterModule]),
        AuditModule,
        FeedModule,
        SyncModule,
        SubscriptionModule,
        GatewayModule,
        AzureModule,
        ConsoleModule,
        TelemetryModule,
      ],
    };
  }
}
