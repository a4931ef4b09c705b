import { Global, Module } from '@nestjs/common';
import { MongooseModule } from '@nestjs/mongoose';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { DatabaseLauncher } from './database-launcher.service';
import { tracingActive } from '../telemetry/telemetry';

@Global()
@Module({
  providers: [DatabaseLauncher],
  exports: [DatabaseLauncher],
})
class DatabaseLauncherModule {}

@Global()
@Module({
  imports: [
    DatabaseLauncherModule,
    MongooseModule.forRootAsync({
      inject: [DatabaseLauncher, APP_CONFIG],
      useFactory: async (launcher: DatabaseLauncher, config: AppConfig) => ({
        uri: await launcher.uri(),
        // FerretDB on SQLite serialises writers anyway: a small pool avoids SQLITE_BUSY storms
        maxPoolSize: launcher.isEmbedded ? Math.min(4, config.mongodb.poolSize) : config.mongodb.poolSize,
        socketTimeoutMS: config.mongodb.socketTimeoutMS,
        // fail fast (UNAVAILABLE to the client) instead of queueing writes for 30 s
        serverSelectionTimeoutMS: 5000,
        bufferCommands: false,
        autoIndex: false,
        // FerretDB and standalone MongoDB both lack retryable writes on a non-replica-set server
        retryWrites: false,
        // OpenTelemetry: database spans from command events, only when traces are recorded
        monitorCommands: tracingActive(),
      }),
    }),
  ],
  exports: [DatabaseLauncherModule, MongooseModule],
})
export class DatabaseModule {}
