import { ErrorCode } from '@sync/protocol';
import { collectionName } from '@sync/protocol/schemas';
import { ObjectId } from 'mongodb';
import { z } from 'zod/v4';

/** The query of `GET /api/audit` and its opaque page cursor: pure, unit-tested in src/console/console.spec.ts. */
export const AUDIT_PAGE_MAX = 200;
const CURSOR_RE = /^(\d{1,15})\.([0-9a-f]{24})$/;

const when = z.union([
  z
    .string()
    .regex(/^\d{1,15}$/)
    .transform((s) => new Date(Number(s))),
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
