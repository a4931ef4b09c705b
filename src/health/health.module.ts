import { Global, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuthModule } from '../auth/auth.module';
import { DrainService } from './drain.service';
import { HealthController } from './health.controller';
import { MetricsService } from './metrics.service';
import { StatsAccessGuard } from './stats-access.guard';

@Global()
@Module({
  imports: [TerminusModule.forRoot({ logger: false }), AuthModule],
  controllers: [HealthController],
  providers: [MetricsService, StatsAccessGuard, DrainService],
  exports: [MetricsService, DrainService],
})
export class HealthModule {}
