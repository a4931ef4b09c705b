/** A change, as a client sends it and as the server delivers it (PROTOCOL.md). */
import * as z from 'zod/v4';
import { LIMITS } from '../types';
import {
  ChangeIdSchema,
  COLLECTION_MESSAGE,
  collectionName,
  documentData,
  DOCUMENT_DATA_JSON,
  DocumentIdSchema,
  FailureAckSchema,
  OperationSchema,
  TimestampSchema,
} from './primitives';

const DATA = documentData();

export const TIMESTAMP_MESSAGE = 'timestamp must be a non-negative number (UTC ms)';

/**
 * One change sent by a client. Aliases: `id` and `patchId` for `changeId` (first present wins),
 * `collectionName` for `collection`. `null` counts as absent. Shape only: the size limit
 * (`MAX_CHANGE_BYTES`, PAYLOAD_TOO_LARGE) and "an update needs data" are checked by the server next.
 */
export const ClientChangeSchema = z
  .object({
    changeId: ChangeIdSchema.nullish().meta({ description: 'client-made unique id (UUID); aliases id, patchId' }),
    id: ChangeIdSchema.nullish().meta({ description: 'alias of changeId' }),
    patchId: ChangeIdSchema.nullish().meta({ description: 'alias of changeId' }),
    operation: OperationSchema,
    collection: collectionName().nullish(),
    collectionName: collectionName().nullish().meta({ description: 'alias of collection' }),
    documentId: DocumentIdSchema,
    // checked below unless the operation is a delete (a delete's data is ignored)
    data: z.unknown().optional().meta({ description: 'insert: the whole document; update: the fields to set; delete: ignored' }),
    timestamp: z
      .number(TIMESTAMP_MESSAGE)
      .nonnegative(TIMESTAMP_MESSAGE)
      .nullish()
      .meta({ description: 'UTC ms when the change was made; falls back to data.sync_updated_at, then the server clock' }),
    idType: z
      .enum(['objectId', 'string'], 'idType must be "objectId" or "string"')
      .nullish()
      .meta({ description: 'how a NEW document of an "auto" collection stores its _id ("objectId" needs a 24-hex documentId)' }),
  })
  .superRefine((c, ctx) => {
    if ((c.collection ?? c.collectionName) == null) ctx.addIssue({ code: 'custom', message: COLLECTION_MESSAGE, path: ['collection'] });
    if (c.operation === 'delete' || c.data === undefined || c.data === null) return;
    const r = DATA.safeParse(c.data);
    if (!r.success) ctx.addIssue({ code: 'custom', message: r.error.issues[0]?.message ?? 'data must be an object', path: ['data'] });
  })
  .meta({
    id: 'ClientChange',
    // what the refinement above says, in JSON Schema
    allOf: [
      {
        anyOf: [
          { required: ['collection'], properties: { collection: { type: 'string' } } },
          { required: ['collectionName'], properties: { collectionName: { type: 'string' } } },
        ],
      },
      { if: { properties: { operation: { const: 'delete' } } }, then: {}, else: { properties: { data: { anyOf: [DOCUMENT_DATA_JSON, { type: 'null' }] } } } },
    ],
  } as Record<string, unknown>);

export const DeliveredChangeSchema = z
  .object({
    changeId: z.string(),
    operation: OperationSchema,
    collection: z.string(),
    documentId: z.string(),
    data: z.record(z.string(), z.unknown()).optional().meta({ description: 'the whole document after the change; absent for a delete' }),
    timestamp: TimestampSchema.meta({ description: "the document's sync_updated_at after resolution" }),
    userId: z.string().meta({ description: 'the author' }),
    serverTimestamp: TimestampSchema,
    cursor: z.string().meta({ description: 'its place in the change feed: opaque, totally ordered' }),
    outOfView: z.literal(true).optional().meta({ description: "no longer matches the receiver's subscriptions or read rule: drop it locally" }),
    idType: z.literal('objectId').optional().meta({ description: "the document's _id is an ObjectId in the database (documentId is its hex form)" }),
  })
  .meta({ id: 'DeliveredChange' });

export const ChangeAckSuccessSchema = z
  .object({
    success: z.literal(true),
    changeId: z.string(),
    timestamp: TimestampSchema,
    cursor: z.string(),
    duplicate: z.literal(true).optional().meta({ description: 'a retry of a change already applied: the first answer again' }),
  })
  .meta({ id: 'ChangeAckSuccess' });

export const ChangeAckFailureSchema = FailureAckSchema.extend({
  timestamp: TimestampSchema.optional().meta({ description: 'CONFLICT: the winning stored timestamp' }),
  current: z
    .record(z.string(), z.unknown())
    .nullable()
    .optional()
    .meta({ description: 'CONFLICT: the winning document (null when deleted), only for a reader of it' }),
  duplicate: z.literal(true).optional(),
}).meta({ id: 'ChangeAckFailure' });

export const ChangeAckSchema = z.union([ChangeAckSuccessSchema, ChangeAckFailureSchema]).meta({ id: 'ChangeAck' });

export const CHANGES_MESSAGE = 'changes must be an array';
/**
 * `sync:changeBatch` and `POST /api/changes`. Each item is validated on its own (a bad item gets its
 * own failure ack in `results`); more than `MAX_BATCH_SIZE` items is PAYLOAD_TOO_LARGE.
 */
export const ChangeBatchRequestSchema = z
  .object({
    changes: z
      .array(z.unknown(), CHANGES_MESSAGE)
      .meta({ items: { $ref: '#/components/schemas/ClientChange' }, maxItems: LIMITS.defaultMaxBatchSize } as Record<string, unknown>),
  })
  .meta({ id: 'ChangeBatchRequest' });

export const ChangeBatchAckSchema = z
  .object({
    success: z.literal(true),
    results: z.array(ChangeAckSchema).meta({ description: 'results[i] is the ack sync:change would give for changes[i]' }),
    successCount: z.number().int(),
    failureCount: z.number().int(),
  })
  .meta({ id: 'ChangeBatchAck' });
