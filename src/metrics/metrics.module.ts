import { Global, Module } from '@nestjs/common';
import { MetricsService } from './metrics.service';

/** The Prometheus registry and the sync counters: a leaf every module may use. */
@Global()
@Module({
  providers: [MetricsService],
  exports: [MetricsService],
})
export class MetricsModule {}
