import { Module, OnApplicationShutdown } from '@nestjs/common';
import { DatabaseTracing } from './database-tracing.service';
import { stopTelemetry } from './telemetry';

/** Database spans for OpenTelemetry traces (inactive unless a tracer provider records). */
@Module({ providers: [DatabaseTracing] })
export class TelemetryModule implements OnApplicationShutdown {
  /** Flushes the spans still batched (only a provider started by startTelemetry, in main.ts). */
  async onApplicationShutdown(): Promise<void> {
    await stopTelemetry();
  }
}
