import { DynamicModule, Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { AuthModule } from './auth/auth.module';
import { ClusterModule } from './cluster/cluster.module';
import { APP_CONFIG, ConfigModule } from './config/config.module';
import { AppConfig } from './config/config.schema';
import { DatabaseModule } from './database/database.module';
import { HealthModule } from './health/health.module';
import { ConflictModule } from './conflict/conflict.module';
import { ConsoleModule } from './console/console.module';
import { LimitsModule } from './limits/limits.module';
import { PermissionModule } from './permission/permission.module';
import { SchemasModule } from './schemas/schemas.module';
import { SyncModule } from './sync/sync.module';
import { TelemetryModule } from './telemetry/telemetry.module';
import { randomUUID } from 'node:crypto';

const QUIET_PATHS = new Set(['/health', '/ready', '/metrics']);

@Module({})
export class AppModule {
  /** The whole application; `config` is validated from the environment when not given (tests pass one). */
  static forRoot(config?: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
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
        AuthModule,
        LimitsModule,
        ConflictModule,
        HealthModule,
        PermissionModule,
        SchemasModule,
        ClusterModule,
        SyncModule,
        ConsoleModule,
        TelemetryModule,
      ],
    };
  }
}
