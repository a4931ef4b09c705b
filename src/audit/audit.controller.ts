import { BadRequestException, Controller, Get, Header, Query, UseGuards } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiForbiddenResponse,
  ApiOkResponse,
  ApiOperation,
  ApiQuery,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { ErrorCode } from '@sync/protocol';
import { AdminGuard } from '../auth/guards/admin.guard';
import { AuditRepository } from './audit.repository';
import { AUDIT_PAGE_MAX, AuditQuerySchema, decodeAuditCursor, encodeAuditCursor } from './audit.query';

/** The audit trail's read API for administrators (the operator console pages through it). */
@ApiTags('console')
@Controller()
export class AuditController {
  constructor(private readonly trail: AuditRepository) {}

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
    const rows = await this.trail.page({ collection: q.collection, userId: q.userId, code: q.code, from: q.from, to: q.to, before, limit: limit + 1 });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(({ _id, ...r }) => ({ id: _id.toHexString(), ...r })),
      nextCursor: rows.length > limit && last ? encodeAuditCursor(last.at, last._id) : null,
    };
  }
}
