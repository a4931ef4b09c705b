import { Controller, Get, Header, HttpCode, Inject, Optional, Res, ServiceUnavailableException, UseGuards } from '@nestjs/common';
import { SkipThrottle } from '@nestjs/throttler';
import { HealthCheck, HealthCheckService, HealthIndicatorService, MongooseHealthIndicator } from '@nestjs/terminus';
import type { Response } from 'express';
import { ClusterBusHealth, reportsHealth } from '../cluster/redis-cluster-bus';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { DatabaseLauncher } from '../database/database-launcher.service';
import { CLUSTER_BUS, ClusterBus } from '../delivery/delivery.ports';
import { DrainService } from '../lifecycle/drain.service';
import { MetricsService } from '../metrics/metrics.service';
import { StatsAccessGuard } from './stats-access.guard';

@Controller()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly mongoose: MongooseHealthIndicator,
    private readonly indicator: HealthIndicatorService,
    private readonly launcher: DatabaseLauncher,
    @Inject(MetricsService) private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly drain: DrainService,
    @Optional() @Inject(CLUSTER_BUS) private readonly bus?: ClusterBus | null,
  ) {}

  private clusterHealth(full: boolean): Partial<ClusterBusHealth> | undefined {
    if (!reportsHealth(this.bus)) return undefined;
    const h = this.bus.health();
    if (full) return h;
    // /health is public: in production it does not name the host, the database or the error
    const { kind, status, publisher, subscriber, subscribed, since } = h;
    return { kind, status, publisher, subscriber, subscribed, since };
  }

  /**
   * Liveness: the process answers. Never touches the database (a DB outage must not restart pods).
   * Always 200; `status` is `degraded` while the cluster bus (Redis) is down, with its state in `cluster`
   * (node id, channel and last error too outside production; /stats always has them).
   */
  @Get('health')
  @SkipThrottle()
  @HttpCode(200)
  liveness() {
    const cluster = this.clusterHealth(!this.config.isProduction);
    return {
      status: cluster && cluster.status !== 'up' ? 'degraded' : 'ok',
      uptime: Math.round(process.uptime()),
      timestamp: Date.now(),
      ...(cluster ? { cluster } : {}),
    };
  }

  /**
   * Readiness: the database answers a ping. 503 while it does not, and from the moment the node
   * starts shutting down. The cluster bus is deliberately
   * not part of it (see README, "Horizontal scale"): a node without Redis still accepts and stores
   * writes correctly, only live pushes from other nodes pause.
   */
  @Get('ready')
  @SkipThrottle()
  @HealthCheck()
  readiness() {
    // shutting down (SIGTERM): out of the load balancer at once, whatever the database says
    if (this.drain.draining) throw new ServiceUnavailableException({ status: 'shutting_down' });
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
  async stats() {
    const cluster = this.clusterHealth(true);
    return { ...(await this.metrics.snapshot()), ...(cluster ? { cluster } : {}) };
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
