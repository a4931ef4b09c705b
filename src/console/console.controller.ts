import { Controller, Get, Header, Inject, Optional, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags, ApiUnauthorizedResponse, ApiForbiddenResponse, ApiExcludeEndpoint } from '@nestjs/swagger';
import type { Response } from 'express';
import { reportsHealth } from '../cluster/redis-cluster-bus';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { ChangeFeedService } from '../feed/change-feed.service';
import { CLUSTER_BUS, ClusterBus } from '../delivery/delivery.ports';
import { AdminGuard } from '../auth/guards/admin.guard';
import { asyncApiJson } from './api-docs';
import { ConsoleRepository } from './console.repository';
import { ConsoleSampler } from './console.sampler';

/** Feed counters and collection counts are re-read at most this often. */
export const DATABASE_FIGURES_TTL_MS = 5000;

/** The operator console's data (admin only) and the protocol documents (public: they hold no data). */
@ApiTags('console')
@Controller()
export class ConsoleController {
  private figures?: {
    at: number;
    value: Promise<{ counters: { highWater: number; purgedThrough: number }; head: number; collections: { name: string; count: number }[] }>;
  };

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
    private readonly sampler: ConsoleSampler,
    private readonly repo: ConsoleRepository,
    private readonly feed: ChangeFeedService,
    @Optional() @Inject(CLUSTER_BUS) private readonly bus?: ClusterBus | null,
  ) {}

  /** The figures that cost queries, shared by every caller for DATABASE_FIGURES_TTL_MS (one query set, however many consoles poll). */
  private databaseFigures() {
    const now = Date.now();
    if (!this.figures || now - this.figures.at > DATABASE_FIGURES_TTL_MS) {
      const p = Promise.all([this.repo.feedCounters(), this.feed.head(), this.repo.collectionCounts()]).then(([counters, head, collections]) => ({
        counters,
        head,
        collections,
      }));
      this.figures = { at: now, value: p };
      p.catch(() => (this.figures = undefined));
    }
    return this.figures.value;
  }

  @Get('api/admin/overview')
  @UseGuards(AdminGuard)
  @ApiBearerAuth('admin')
  @ApiBearerAuth('service')
  @ApiOperation({
    summary: 'Everything the operator console shows: connections, rates, acks by code, latency, cluster, feed, collections, the last ten minutes',
  })
  @ApiOkResponse({
    description: 'the overview',
    schema: {
      type: 'object',
      properties: {
        at: { type: 'number', description: 'UTC ms' },
        connections: { type: 'integer' },
        users: { type: 'object', properties: { count: { type: 'integer' }, ids: { type: 'array', items: { type: 'string' }, maxItems: 100 } } },
        totals: { type: 'object', additionalProperties: { type: 'number' } },
        acksByCode: { type: 'object', additionalProperties: { type: 'number' }, description: 'OK, DUPLICATE and every refusal code' },
        rates: { type: 'object', properties: { changesPerSecond: { type: 'number' }, deliveriesPerSecond: { type: 'number' } } },
        ackLatencyMs: { type: 'object', properties: { p50: { type: 'number', nullable: true }, p99: { type: 'number', nullable: true } } },
        cluster: { type: 'object', additionalProperties: true },
        feed: {
          type: 'object',
          properties: { head: { type: 'integer' }, highWater: { type: 'integer' }, purgedThrough: { type: 'integer' }, retentionDays: { type: 'number' } },
        },
        collections: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, count: { type: 'integer' } } } },
        node: { type: 'object', additionalProperties: true },
        history: {
          type: 'array',
          description: 'the last ten minutes, one sample every 2 s',
          items: { type: 'object', additionalProperties: { type: 'number', nullable: true } },
        },
      },
    },
  })
  @ApiUnauthorizedResponse({ description: 'no or invalid token' })
  @ApiForbiddenResponse({ description: 'not an admin' })
  @Header('Cache-Control', 'no-store')
  async overview() {
    const snap = await this.metrics.snapshot();
    const { counters, head, collections } = await this.databaseFigures();
    const history = this.sampler.history();
    const latest = history[history.length - 1];
    const applied = snap.syncedChanges;
    return {
      at: Date.now(),
      connections: snap.activeConnections,
      users: { count: snap.activeUserCount, ids: snap.activeUsers.slice(0, 100) },
      totals: { received: snap.totalChanges, applied, duplicate: snap.duplicateChanges, delivered: snap.deliveredChanges, authFailures: snap.authFailures },
      acksByCode: { OK: applied, DUPLICATE: snap.duplicateChanges, ...snap.rejectedChanges },
      rates: { changesPerSecond: latest?.changesPerSecond ?? 0, deliveriesPerSecond: latest?.deliveriesPerSecond ?? 0 },
      ackLatencyMs: { p50: latest?.p50 ?? null, p99: latest?.p99 ?? null },
      cluster: reportsHealth(this.bus) ? this.bus.health() : { kind: this.bus ? 'custom' : 'none', status: 'single node' },
      feed: { head, highWater: counters.highWater, purgedThrough: counters.purgedThrough, retentionDays: this.config.sync.changeRetentionDays },
      collections,
      node: { uptimeSeconds: snap.uptimeSeconds, memory: snap.memory },
      history,
    };
  }

  @Get('asyncapi.json')
  @ApiOperation({ summary: 'The AsyncAPI 3.0 document of the Socket.IO protocol (as docs/asyncapi.json)' })
  @ApiOkResponse({ description: 'AsyncAPI 3.0 JSON' })
  asyncapi(@Res() res: Response) {
    res.type('application/json').send(asyncApiJson());
  }

  /** uPlot for the console page, straight from node_modules (no CDN). */
  @Get('console/vendor/uPlot.iife.min.js')
  @ApiExcludeEndpoint()
  @Header('Cache-Control', 'public, max-age=3600')
  uplotJs(@Res() res: Response) {
    res.type('application/javascript').sendFile(require.resolve('uplot/dist/uPlot.iife.min.js'));
  }

  @Get('console/vendor/uPlot.min.css')
  @ApiExcludeEndpoint()
  @Header('Cache-Control', 'public, max-age=3600')
  uplotCss(@Res() res: Response) {
    res.type('text/css').sendFile(require.resolve('uplot/dist/uPlot.min.css'));
  }
}
