import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuthModule } from '../auth/auth.module';
import { HealthController } from './health.controller';
import { StatsAccessGuard } from './stats-access.guard';

/** `/health`, `/ready`, `/stats`, `/metrics`: the top of the graph, it may read every module. */
@Module({
  imports: [TerminusModule.forRoot({ logger: false }), AuthModule],
  controllers: [HealthController],
  providers: [StatsAccessGuard],
})
export class HealthModule {}
