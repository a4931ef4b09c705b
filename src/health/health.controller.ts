import { Controller, Get, Header, HttpCode, Inject, Res, UseGuards } from '@nestjs/common';
import { SkipThrottle } from '@nestjs/throttler';
import { HealthCheck, HealthCheckService, HealthIndicatorService, MongooseHealthIndicator } from '@nestjs/terminus';
import type { Response } from 'express';
import { DatabaseLauncher } from '../database/database-launcher.service';
import { MetricsService } from './metrics.service';
import { StatsAccessGuard } from './stats-access.guard';

@Controller()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly mongoose: MongooseHealthIndicator,
    private readonly indicator: HealthIndicatorService,
    private readonly launcher: DatabaseLauncher,
    @Inject(MetricsService) private readonly metrics: MetricsService,
  ) {}

  /** Liveness: the process answers. Never touches the database (a DB outage must not restart pods). */
  @Get('health')
  @SkipThrottle()
  @HttpCode(200)
  liveness() {
    return { status: 'ok', uptime: Math.round(process.uptime()), timestamp: Date.now() };
  }

  /** Readiness: the database answers a ping. 503 while it does not. */
  @Get('ready')
  @SkipThrottle()
  @HealthCheck()
  readiness() {
    return this.health.check([
      () => {
        const ind = this.indicator.check('embeddedDatabase');
        if (!this.launcher.isEmbedded) return ind.up({ mode: 'external' });
        return this.launcher.embeddedUp ? ind.up({ mode: 'embedded' }) : ind.down({ mode: 'embedded', message: 'process not running' });
      },
      () => this.mongoose.pingCheck('database', { timeout: 1500 }),
    ]);
  }

  @Get('stats')
  @UseGuards(StatsAccessGuard)
  stats() {
    return this.metrics.snapshot();
  }

  @Get('metrics')
  @UseGuards(StatsAccessGuard)
  @SkipThrottle()
  @Header('Cache-Control', 'no-store')
  async prometheus(@Res() res: Response) {
    res.setHeader('Content-Type', this.metrics.registry.contentType);
    res.send(await this.metrics.registry.metrics());
  }
}
