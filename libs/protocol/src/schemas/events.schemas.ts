/**
 * One schema per socket event payload and ack (PROTOCOL.md "Client to server", "Server to client").
 * `PROTOCOL_EVENTS` is the catalogue the AsyncAPI document is generated from.
 */
import * as z from 'zod/v4';
import { ErrorCode } from '../errors';
import { EVENTS, LIMITS } from '../types';
import { ChangeAckSchema, ChangeBatchAckSchema, ChangeBatchRequestSchema, ClientChangeSchema, DeliveredChangeSchema } from './change.schemas';
import { COLLECTION_JSON, collectionName, documentData, FailureAckSchema } from './primitives';

const COLLECTION_NAME_MESSAGE = 'collection is not a valid collection name';
// lengths are checked by the subscription service (a longer filter is PAYLOAD_TOO_LARGE, not INVALID_PAYLOAD)
const args = z.array(z.unknown(), 'args must be an array').meta({ description: `values of $0…$n (at most ${LIMITS.maxArgs})` });
const filter = (message = 'filter must be a string') =>
  z.string(message).meta({ description: `a Realm Query Language filter (at most ${LIMITS.filterMaxLength} characters, else PAYLOAD_TOO_LARGE)` });

const SPEC_MESSAGE = 'a subscription must be an object { collection, filter?, args? }';
export const SubscriptionSpecSchema = z
  .object({ collection: collectionName(COLLECTION_NAME_MESSAGE), filter: filter().nullish(), args: args.nullish() }, SPEC_MESSAGE)
  .meta({ id: 'SubscriptionSpec' });

export const JoinRequestSchema = z
  .object({
    userId: z.string('userId must be a string').nullish().meta({ description: 'AUTH_MODE=dev, or the same user as the token' }),
    token: z.string('token must be a string').nullish().meta({ description: 'a JWT (a leading "Bearer " is stripped)' }),
    subscriptions: z.array(SubscriptionSpecSchema, 'subscriptions must be an array').nullish(),
  })
  .meta({ id: 'JoinRequest' });
export const JoinAckSchema = z
  .object({ success: z.literal(true), userId: z.string(), timestamp: z.number(), cursor: z.string().meta({ description: 'the head of the change feed' }) })
  .meta({ id: 'JoinAck' });

export const SubscribeRequestSchema = z
  .object(
    {
      ...SubscriptionSpecSchema.shape,
      bootstrap: z.boolean('bootstrap must be a boolean').nullish().meta({ description: 'default true: sync:bootstrap pages follow' }),
    },
    SPEC_MESSAGE,
  )
  .meta({ id: 'SubscribeRequest' });
export const SubscribeAckSchema = z
  .object({ success: z.literal(true), subscriptionId: z.string(), count: z.number().int().meta({ description: 'visible matching documents' }) })
  .meta({ id: 'SubscribeAck' });

const UNSUBSCRIBE_MESSAGE = 'expected { subscriptionId } or { collection, filter? }';
/** `{ subscriptionId }` or `{ collection, filter? }` (with both, the id wins). */
export const UnsubscribeRequestSchema = z
  .object(
    {
      subscriptionId: z.string('subscriptionId must be a string').nullish(),
      collection: z
        .unknown()
        .optional()
        .meta({ type: 'string', description: 'a collection name (checked when there is no subscriptionId)' } as Record<string, unknown>),
      filter: z
        .unknown()
        .optional()
        .meta({ type: 'string' } as Record<string, unknown>),
    },
    UNSUBSCRIBE_MESSAGE,
  )
  .superRefine((v, ctx) => {
    if (v.subscriptionId != null) return;
    if (v.collection == null) return void ctx.addIssue({ code: 'custom', message: UNSUBSCRIBE_MESSAGE });
    const r = z.object({ collection: collectionName(COLLECTION_NAME_MESSAGE), filter: filter().nullish() }).safeParse(v);
    if (!r.success) ctx.addIssue({ code: 'custom', message: r.error.issues[0]?.message ?? UNSUBSCRIBE_MESSAGE });
  })
  .meta({
    id: 'UnsubscribeRequest',
    anyOf: [
      { required: ['subscriptionId'], properties: { subscriptionId: { type: 'string' } } },
      { required: ['collection'], properties: { collection: COLLECTION_JSON, filter: { type: ['string', 'null'] } } },
    ],
  } as Record<string, unknown>);
export const UnsubscribeAckSchema = z
  .object({ success: z.literal(true), count: z.number().int().meta({ description: 'subscriptions left' }) })
  .meta({ id: 'UnsubscribeAck' });

export const UpdateSubscriptionsRequestSchema = z
  .object(
    {
      subscriptions: z.array(
        z.object(
          { collection: collectionName(COLLECTION_NAME_MESSAGE), query: filter('query must be a string').nullish(), args: args.nullish() },
          SPEC_MESSAGE,
        ),
        'subscriptions must be an array',
      ),
    },
    'expected { subscriptions: [...] }',
  )
  .meta({ id: 'UpdateSubscriptionsRequest' });
export const UpdateSubscriptionsAckSchema = z.object({ success: z.literal(true), version: z.number().int() }).meta({ id: 'UpdateSubscriptionsAck' });

export const LIMIT_MESSAGE = 'limit must be a positive integer';
export const GetChangesRequestSchema = z
  .object({
    cursor: z.string('cursor is not a cursor this server issued').nullish().meta({ description: 'opaque, from a previous answer' }),
    since: z
      .number('since must be a UTC timestamp in ms')
      .nonnegative('since must be a UTC timestamp in ms')
      .nullish()
      .meta({ description: 'UTC ms, exclusive (older way to ask)' }),
    collection: collectionName(COLLECTION_NAME_MESSAGE).nullish(),
    limit: z
      .number(LIMIT_MESSAGE)
      .int(LIMIT_MESSAGE)
      .min(1, LIMIT_MESSAGE)
      .nullish()
      .meta({ description: `default ${LIMITS.defaultGetChangesLimit}; more than ${LIMITS.maxGetChangesLimit} is lowered to it` }),
  })
  .meta({ id: 'GetChangesRequest' });
export const GetChangesAckSchema = z
  .object({
    success: z.literal(true),
    changes: z.array(DeliveredChangeSchema),
    cursor: z.string(),
    latestTimestamp: z.number(),
    hasMore: z.boolean(),
  })
  .meta({ id: 'GetChangesAck' });

/** `ping` accepts anything: a non-number `t` is answered with `clientTimestamp: null`. */
export const PingRequestSchema = z.object({ t: z.number().nullish().meta({ description: 'the client clock (ms)' }) }).meta({ id: 'PingRequest' });
export const PingAckSchema = z
  .object({ timestamp: z.number(), clientTimestamp: z.number().nullable(), latency: z.number().nullable() })
  .meta({ id: 'PingAck' });

const docQuery = z.object({ _id: z.string(`documentId must be a non-empty string of at most ${LIMITS.documentIdMax} characters`) });
export const MongoUpsertRequestSchema = z
  .object({
    collection: collectionName(),
    update: documentData('data must be an object').meta({ description: 'the fields to set' }),
    query: docQuery,
    patchId: z.string().nullish().meta({ description: 'the changeId' }),
  })
  .meta({ id: 'MongoUpsertRequest' });
export const MongoUpsertAckSchema = z.enum(['ok', 'error']).meta({ id: 'MongoUpsertAck' });
export const MongoDeleteRequestSchema = z
  .object({ collection: collectionName(), query: docQuery, patchId: z.string().nullish() })
  .meta({ id: 'MongoDeleteRequest' });
export const MongoDeleteAckSchema = z
  .object({ success: z.boolean(), error: z.string().optional(), code: z.string().optional() })
  .meta({ id: 'MongoDeleteAck' });

export const BootstrapPageSchema = z
  .object({
    subscriptionId: z.string(),
    collection: z.string(),
    data: z.array(z.record(z.string(), z.unknown())),
    page: z.number().int(),
    done: z.boolean(),
    cursor: z.string().meta({ description: 'the feed position the snapshot reflects' }),
    objectIds: z.array(z.string()).optional().meta({ description: "the ids (hex) of this page's documents whose _id is an ObjectId in the database" }),
  })
  .meta({ id: 'BootstrapPage' });
export const ChangesEventSchema = z.array(DeliveredChangeSchema).meta({ id: 'ChangesEvent' });
export const TokenExpiredEventSchema = z
  .object({ code: z.literal(ErrorCode.UNAUTHENTICATED), error: z.string(), graceMs: z.number() })
  .meta({ id: 'TokenExpiredEvent' });

/** `sync:error`: an optional notice right before the server disconnects the socket (`SLOW_CONSUMER`: it did not read its live changes). */
export const SyncErrorEventSchema = z
  .object({
    code: z.string(),
    error: z.string(),
    retryAfterMs: z.number().nonnegative().optional().meta({ description: 'a suggested wait before reconnecting' }),
  })
  .meta({ id: 'SyncErrorEvent' });

/** `sync:shutdown`: the node is stopping (rolling update); it disconnects the socket right after. */
export const ShutdownNoticeSchema = z
  .object({
    reason: z.string().optional().meta({ description: '"server_shutdown"' }),
    retryAfterMs: z.number().nonnegative().optional().meta({ description: 'a suggested wait before reconnecting, spread per socket' }),
  })
  .meta({ id: 'ShutdownNotice' });

export interface EventSpec {
  direction: 'send' | 'receive';
  summary: string;
  payload: z.ZodType;
  /** The ack's schema (client→server events); failures are FailureAck unless the event says otherwise. */
  ack?: z.ZodType;
  /** Failure codes this event can answer with. */
  errors?: ErrorCode[];
}

const AUTH: ErrorCode[] = [ErrorCode.UNAUTHENTICATED, ErrorCode.INVALID_PAYLOAD, ErrorCode.INTERNAL];
const WRITE: ErrorCode[] = [...AUTH, ErrorCode.FORBIDDEN, ErrorCode.CONFLICT, ErrorCode.RATE_LIMITED, ErrorCode.PAYLOAD_TOO_LARGE, ErrorCode.UNAVAILABLE];

/** Every event of the protocol, from the client's point of view (`send`: client → server). */
export const PROTOCOL_EVENTS: Record<string, EventSpec> = {
  [EVENTS.join]: {
    direction: 'send',
    summary: 'Authenticate the socket (and optionally subscribe)',
    payload: JoinRequestSchema,
    ack: JoinAckSchema,
    errors: [ErrorCode.UNAUTHENTICATED, ErrorCode.FORBIDDEN, ErrorCode.INVALID_PAYLOAD, ErrorCode.INVALID_QUERY, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL],
  },
  [EVENTS.subscribe]: {
    direction: 'send',
    summary: 'Subscribe to a filtered collection; sync:bootstrap pages follow',
    payload: SubscribeRequestSchema,
    ack: SubscribeAckSchema,
    errors: [...AUTH, ErrorCode.INVALID_QUERY, ErrorCode.UNAVAILABLE],
  },
  [EVENTS.unsubscribe]: {
    direction: 'send',
    summary: 'Drop a subscription, or every subscription on a collection',
    payload: UnsubscribeRequestSchema,
    ack: UnsubscribeAckSchema,
    errors: AUTH,
  },
  [EVENTS.updateSubscriptions]: {
    direction: 'send',
    summary: "Replace the socket's whole subscription set (compatibility)",
    payload: UpdateSubscriptionsRequestSchema,
    ack: UpdateSubscriptionsAckSchema,
    errors: [...AUTH, ErrorCode.INVALID_QUERY],
  },
  [EVENTS.change]: { direction: 'send', summary: 'Send one change', payload: ClientChangeSchema, ack: ChangeAckSchema, errors: WRITE },
  [EVENTS.changeBatch]: {
    direction: 'send',
    summary: 'Send changes in order, each on its own merits (the fast path)',
    payload: ChangeBatchRequestSchema,
    ack: ChangeBatchAckSchema,
    errors: WRITE,
  },
  [EVENTS.getChanges]: {
    direction: 'send',
    summary: 'Read the change feed after a cursor',
    payload: GetChangesRequestSchema,
    ack: GetChangesAckSchema,
    errors: [...AUTH, ErrorCode.CURSOR_EXPIRED, ErrorCode.UNAVAILABLE],
  },
  [EVENTS.ping]: { direction: 'send', summary: 'Clock and latency probe (no join needed)', payload: PingRequestSchema, ack: PingAckSchema, errors: [] },
  [EVENTS.mongoUpsert]: {
    direction: 'send',
    summary: 'Compatibility: update query._id with `update` (ack "ok" or "error")',
    payload: MongoUpsertRequestSchema,
    ack: MongoUpsertAckSchema,
    errors: [],
  },
  [EVENTS.mongoDelete]: {
    direction: 'send',
    summary: 'Compatibility: delete query._id',
    payload: MongoDeleteRequestSchema,
    ack: MongoDeleteAckSchema,
    errors: WRITE,
  },
  [EVENTS.changes]: { direction: 'receive', summary: 'Live changes for the subscriptions of this socket', payload: ChangesEventSchema },
  [EVENTS.bootstrap]: { direction: 'receive', summary: 'A page of the snapshot of a new subscription', payload: BootstrapPageSchema },
  [EVENTS.tokenExpired]: {
    direction: 'receive',
    summary: "The socket's token expired: re-join with a fresh one or be disconnected",
    payload: TokenExpiredEventSchema,
  },
  [EVENTS.syncError]: {
    direction: 'receive',
    summary: 'Optional notice before the server disconnects the socket (SLOW_CONSUMER: it stopped reading); reconnect and catch up from the cursor',
    payload: SyncErrorEventSchema,
  },
  [EVENTS.shutdown]: {
    direction: 'receive',
    summary: 'Optional notice: the node is stopping; the socket is disconnected right after (reconnect after retryAfterMs plus jitter)',
    payload: ShutdownNoticeSchema,
  },
};

export { ClientChangeSchema, FailureAckSchema };
