/**
 * The building blocks of the protocol's schemas (PROTOCOL.md). Messages are the ones the server has
 * always answered with; a field's JSON Schema comes from the same definition (see asyncapi.ts).
 */
import * as z from 'zod/v4';
import { ErrorCode, isSyncError } from '../errors';
import { isUserCollectionName, LIMITS, OPERATIONS } from '../types';
import { assertSafeData, isPlainObject } from './safe-data';

export const COLLECTION_MESSAGE = 'collection must be 1-64 letters, digits, "_", "-" or "." and may not be a system collection (system.*, _sync*)';

const COLLECTION_META = {
  description: 'letters, digits, "_", "-", "."; at most 64 characters; never system.* or _sync*',
  not: { anyOf: [{ pattern: '^_sync' }, { pattern: '^system(\\.|$)' }, { pattern: '^\\.' }, { pattern: '\\.$' }, { pattern: '\\.\\.' }] },
};
/** A collection name's JSON Schema (what `z.toJSONSchema(collectionName())` gives, written out: no generator at load). */
export const COLLECTION_JSON: Record<string, unknown> = { ...COLLECTION_META, type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' };

/** A user collection name (letters, digits, `_`, `-`, `.`; never `system.*` nor `_sync*`). */
export const collectionName = (message = COLLECTION_MESSAGE) =>
  z
    .string(message)
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, message)
    .refine((v) => isUserCollectionName(v), message)
    .meta(COLLECTION_META as Record<string, unknown>);

export const CHANGE_ID_MESSAGE = `changeId must be a non-empty string of at most ${LIMITS.changeIdMax} characters`;
export const ChangeIdSchema = z.string(CHANGE_ID_MESSAGE).min(1, CHANGE_ID_MESSAGE).max(LIMITS.changeIdMax, CHANGE_ID_MESSAGE);

export const DOCUMENT_ID_MESSAGE = `documentId must be a non-empty string of at most ${LIMITS.documentIdMax} characters`;
export const DocumentIdSchema = z.string(DOCUMENT_ID_MESSAGE).min(1, DOCUMENT_ID_MESSAGE).max(LIMITS.documentIdMax, DOCUMENT_ID_MESSAGE);

export const OPERATION_MESSAGE = 'operation must be "insert", "update" or "delete"';
export const OperationSchema = z.enum(OPERATIONS as unknown as ['insert', 'update', 'delete'], OPERATION_MESSAGE);

/** UTC milliseconds. */
export const TimestampSchema = z.number().nonnegative().meta({ description: 'UTC milliseconds' });

/** A document's JSON Schema (also the meta of `documentData`). */
export const DOCUMENT_DATA_JSON: Record<string, unknown> = {
  type: 'object',
  description: 'JSON data; keys never start with "$" nor contain "." or "\\" at any depth; at most 32 levels; arrays of at most 10,000 items',
  propertyNames: { not: { anyOf: [{ pattern: '^\\$' }, { pattern: '\\.' }, { pattern: '\\\\' }, { const: '__proto__' }] }, maxLength: 256 },
};

/**
 * A document as JSON data: an object whose keys never start with `$` nor contain `.` at any depth,
 * no `__proto__`, at most 32 levels, arrays of at most 10,000 items, finite numbers. Parsed without
 * copying (the checks are the server's `assertSafeData`).
 */
export const documentData = (message = 'data must be an object') =>
  z
    .unknown()
    .superRefine((v, ctx) => {
      if (!isPlainObject(v)) return void ctx.addIssue({ code: 'custom', message });
      try {
        assertSafeData(v);
      } catch (e) {
        if (!isSyncError(e)) throw e;
        ctx.addIssue({ code: 'custom', message: e.message });
      }
    })
    .meta(DOCUMENT_DATA_JSON);

export const ErrorCodeSchema = z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]).meta({ id: 'ErrorCode' });

/** `{ success: false, code, error }` (PROTOCOL.md "Acks"); some codes add optional fields. */
export const FailureAckSchema = z
  .object({
    success: z.literal(false),
    code: ErrorCodeSchema,
    error: z.string().meta({ description: 'a human sentence' }),
    changeId: z.string().optional(),
    retryAfterMs: z.number().optional().meta({ description: 'RATE_LIMITED: when to retry' }),
    position: z.number().optional().meta({ description: 'INVALID_QUERY: where the filter stops parsing' }),
    details: z
      .object({ pointer: z.string(), message: z.string() })
      .optional()
      .meta({ description: 'INVALID_PAYLOAD from a collection schema: the JSON pointer of what is wrong in the resulting document' }),
  })
  .meta({ id: 'FailureAck' });
