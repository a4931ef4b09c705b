import { BadRequestException, Controller, Get, Header, Inject, Optional, Query, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiQuery, ApiTags, ApiUnauthorizedResponse, ApiForbiddenResponse, ApiBadRequestResponse, ApiExcludeEndpoint } from '@nestjs/swagger';
import { ErrorCode } from '@sync/protocol';
import { collectionName } from '@sync/protocol/schemas';
import type { Response } from 'express';
import { ObjectId } from 'mongodb';
import { z } from 'zod/v4';
import { reportsHealth } from '../cluster/redis-cluster-bus';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../health/metrics.service';
import { ChangeFeedService } from '../sync/change-feed.service';
import { CLUSTER_BUS, ClusterBus } from '../sync/delivery.service';
import { AdminGuard } from './admin.guard';
import { asyncApiJson } from './api-docs';
import { ConsoleRepository } from './console.repository';
import { ConsoleSampler } from './console.sampler';

export const AUDIT_PAGE_MAX = 200;
/** Feed counters and collection counts are re-read at most this often. */
export const DATABASE_FIGURES_TTL_MS = 5000;
const CURSOR_RE = /^(\d{1,15})\.([0-9a-f]{24})$/;

const when = z.union([
  z.string().regex(/^\d{1,15}$/).transform((s) => new Date(Number(s))),
  z.iso.datetime({ offset: true }).transform((s) => new Date(s)),
]);

/** The query of GET /api/audit: every parameter optional, each bounded; unknown parameters refused. */
export const AuditQuerySchema = z
  .object({
    collection: collectionName('collection is not a valid collection name').optional(),
    userId: z.string().min(1).max(256).optional(),
    code: z.enum(Object.values(ErrorCode) as [string, ...string[]]).optional(),
    from: when.optional(),
    to: when.optional(),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, 'limit must be an integer')
      .transform(Number)
      .pipe(z.number().int().min(1).max(AUDIT_PAGE_MAX))
      .optional(),
    cursor: z.string().max(64).optional(),
  })
  .strict();

export function encodeAuditCursor(at: Date, id: ObjectId): string {
  return Buffer.from(`${at.getTime()}.${id.toHexString()}`).toString('base64url');
}

export function decodeAuditCursor(cursor: string): { at: Date; id: ObjectId } | null {
  const m = CURSOR_RE.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  return m ? { at: new Date(Number(m[1])), id: new ObjectId(m[2]) } : null;
}

/** The operator console's data (admin only) and the protocol documents (public: they hold no data). */
@ApiTags('console')
@Controller()
export class ConsoleController {
  private figures?: { at: number; value: Promise<{ counters: { highWater: number; purgedThrough: number }; head: number; collections: { name: string; count: number }[] }> };

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
      const p = Promise.all([this.repo.feedCounters(), this.feed.head(), this.repo.collectionCounts()]).then(([counters, head, collections]) => ({ counters, head, collections }));
      this.figures = { at: now, value: p };
      p.catch(() => (this.figures = undefined));
    }
    return this.figures.value;
  }

  @Get('api/admin/overview')
  @UseGuards(AdminGuard)
  @ApiBearerAuth('admin')
  @ApiBearerAuth('service')
  @ApiOperation({ summary: 'Everything the operator console shows: connections, rates, acks by code, latency, cluster, feed, collections, the last ten minutes' })
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
        feed: { type: 'object', properties: { head: { type: 'integer' }, highWater: { type: 'integer' }, purgedThrough: { type: 'integer' }, retentionDays: { type: 'number' } } },
        collections: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, count: { type: 'integer' } } } },
        node: { type: 'object', additionalProperties: true },
        history: { type: 'array', description: 'the last ten minutes, one sample every 2 s', items: { type: 'object', additionalProperties: { type: 'number', nullable: true } } },
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

  @Get('api/audit')
  @UseGuards(AdminGuard)
  @ApiBearerAuth('admin')
  @ApiBearerAuth('service')
  @ApiOperation({ summary: 'The audit trail of refused changes, newest first, filtered and paged (cursor = nextCursor of the previous page)' })
  @ApiQuery({ name: 'collection', required: false, type: String })
  @ApiQuery({ name: 'userId', required: false, type: String })
  @ApiQuery({ name: 'code', required: false, enum: Object.values(ErrorCode) })
  @ApiQuery({ name: 'from', required: false, type: String, description: 'UTC ms or an ISO 8601 date-time (inclusive)' })
  @ApiQuery({ name: 'to', required: false, type: String, description: 'UTC ms or an ISO 8601 date-time (inclusive)' })
  @ApiQuery({ name: 'limit', required: false, type: Number, description: `1-${AUDIT_PAGE_MAX}, default 50` })
  @ApiQuery({ name: 'cursor', required: false, type: String })
  @ApiOkResponse({
    description: 'a page of refused changes, newest first',
    schema: {
      type: 'object',
      properties: {
        items: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              at: { type: 'string', format: 'date-time' },
              userId: { type: 'string' },
              code: { type: 'string', enum: Object.values(ErrorCode) },
              reason: { type: 'string' },
              clientAddress: { type: 'string' },
              changeId: { type: 'string' },
              operation: { type: 'string' },
              collection: { type: 'string' },
              documentId: { type: 'string' },
              timestamp: { type: 'number' },
            },
          },
        },
        nextCursor: { type: 'string', nullable: true, description: 'pass as cursor for the next (older) page; null on the last page' },
      },
    },
  })
  @ApiBadRequestResponse({ description: 'a parameter is invalid' })
  @ApiUnauthorizedResponse({ description: 'no or invalid token' })
  @ApiForbiddenResponse({ description: 'not an admin' })
  @Header('Cache-Control', 'no-store')
  async audit(@Query() query: Record<string, unknown>) {
    const parsed = AuditQuerySchema.safeParse(query);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new BadRequestException(`${issue?.path.join('.') || 'query'}: ${issue?.message ?? 'invalid'}`);
    }
    const q = parsed.data;
    const before = q.cursor === undefined ? undefined : decodeAuditCursor(q.cursor);
    if (before === null) throw new BadRequestException('cursor: not a cursor this server issued');
    const limit = q.limit ?? 50;
    const rows = await this.repo.audit({ collection: q.collection, userId: q.userId, code: q.code, from: q.from, to: q.to, before, limit: limit + 1 });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(({ _id, ...r }) => ({ id: _id.toHexString(), ...r })),
      nextCursor: rows.length > limit && last ? encodeAuditCursor(last.at, last._id) : null,
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
