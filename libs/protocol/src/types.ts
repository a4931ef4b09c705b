/** Wire types of the sync protocol, version 1 (PROTOCOL.md). Shared by the server and the SDK. */
import type { ErrorCode } from './errors';

export type Operation = 'insert' | 'update' | 'delete';
export const OPERATIONS: readonly Operation[] = ['insert', 'update', 'delete'];

/** A plain JSON-like document as stored and delivered (`_id` is the documentId). */
export type SyncDocument = Record<string, unknown>;

/** A change as a client sends it (aliases already normalised away by the server). */
export interface ClientChange {
  changeId?: string;
  operation: Operation;
  collection: string;
  documentId: string;
  data?: SyncDocument;
  timestamp?: number;
  /**
   * Optional: how a NEW document of an `auto` collection stores its `_id` ("objectId" needs a
   * 24-hex documentId). Ignored for documents that exist (their stored type is kept).
   */
  idType?: 'objectId' | 'string';
}

/** What every change carries: its id, what it does to which document, with which data, when. */
export interface ChangeFields {
  changeId: string;
  operation: Operation;
  collection: string;
  documentId: string;
  /** insert: the whole document; update: the fields to set; absent for a delete. */
  data?: SyncDocument;
  /** the change's sync_updated_at (UTC ms) */
  timestamp: number;
}

/** A change as the server delivers it (sync:changes, sync:get_changes, ...). */
export interface DeliveredChange extends ChangeFields {
  userId: string;
  serverTimestamp: number;
  cursor: string;
  outOfView?: true;
  /** Optional: the document's `_id` is an ObjectId in the database (documentId is its hex form). */
  idType?: 'objectId';
}

export interface SubscriptionSpec {
  collection: string;
  filter?: string;
  args?: unknown[];
}

export interface JoinRequest {
  userId?: string;
  token?: string;
  subscriptions?: SubscriptionSpec[];
}
export interface JoinAck {
  success: true;
  userId: string;
  timestamp: number;
  cursor: string;
}

export interface SubscribeRequest extends SubscriptionSpec {
  bootstrap?: boolean;
}
export interface SubscribeAck {
  success: true;
  subscriptionId: string;
  count: number;
}
export interface UnsubscribeRequest {
  subscriptionId?: string;
  collection?: string;
  filter?: string;
}
export interface UnsubscribeAck {
  success: true;
  count: number;
}

export interface ChangeAckSuccess {
  success: true;
  changeId: string;
  timestamp: number;
  cursor: string;
  duplicate?: true;
}
export interface ChangeAckFailure {
  success: false;
  code: ErrorCode;
  error: string;
  changeId?: string;
  /** CONFLICT only: the winning stored timestamp and document (null when deleted). */
  timestamp?: number;
  current?: SyncDocument | null;
  duplicate?: true;
  retryAfterMs?: number;
  /** INVALID_PAYLOAD by a collection schema, to a reader of the document only: what is wrong, where. */
  details?: ViolationDetails;
}
export type ChangeAck = ChangeAckSuccess | ChangeAckFailure;

export interface ChangeBatchRequest {
  changes: ClientChange[];
}
export interface ChangeBatchAck {
  success: true;
  results: ChangeAck[];
  successCount: number;
  failureCount: number;
}

export interface GetChangesRequest {
  cursor?: string;
  since?: number;
  collection?: string;
  limit?: number;
}
export interface GetChangesAck {
  success: true;
  changes: DeliveredChange[];
  cursor: string;
  latestTimestamp: number;
  hasMore: boolean;
}

export interface BootstrapPage {
  subscriptionId: string;
  collection: string;
  data: SyncDocument[];
  page: number;
  done: boolean;
  cursor: string;
  /** Optional: the ids (hex) of this page's documents whose `_id` is an ObjectId in the database. */
  objectIds?: string[];
}

export interface PingAck {
  timestamp: number;
  clientTimestamp: number | null;
  latency: number | null;
}

export interface UpdateSubscriptionsRequest {
  subscriptions: { collection: string; query?: string; args?: unknown[] }[];
}
export interface UpdateSubscriptionsAck {
  success: true;
  version: number;
}

/** Where a document breaks its collection's schema (a JSON pointer) and how. */
export interface ViolationDetails {
  pointer: string;
  message: string;
}

export interface FailureAckShape {
  success: false;
  code: ErrorCode;
  error: string;
  /** RATE_LIMITED / UNAVAILABLE: when to try again. */
  retryAfterMs?: number;
}

type Ack<T> = (response: T | FailureAckShape) => void;

/** Events a client emits (all with an ack). */
export interface ClientToServerEvents {
  'sync:join': (req: JoinRequest, ack: Ack<JoinAck>) => void;
  'sync:subscribe': (req: SubscribeRequest, ack: Ack<SubscribeAck>) => void;
  'sync:unsubscribe': (req: UnsubscribeRequest, ack: Ack<UnsubscribeAck>) => void;
  'sync:update_subscriptions': (req: UpdateSubscriptionsRequest, ack: Ack<UpdateSubscriptionsAck>) => void;
  'sync:change': (req: ClientChange, ack: (response: ChangeAck) => void) => void;
  'sync:changeBatch': (req: ChangeBatchRequest, ack: Ack<ChangeBatchAck>) => void;
  'sync:get_changes': (req: GetChangesRequest, ack: Ack<GetChangesAck>) => void;
  ping: (req: { t?: number }, ack: (response: PingAck) => void) => void;
  mongoUpsert: (req: { collection: string; update: SyncDocument; query: { _id: string }; patchId?: string }, ack: (response: 'ok' | 'error') => void) => void;
  mongoDelete: (req: { collection: string; query: { _id: string }; patchId?: string }, ack: (response: { success: boolean; error?: string }) => void) => void;
}

/** What a client sends with `event` (the payload of the event map), and the answer its ack receives. */
export type EventRequest<E extends keyof ClientToServerEvents> = Parameters<ClientToServerEvents[E]>[0];
export type EventAck<E extends keyof ClientToServerEvents> = Parameters<Parameters<ClientToServerEvents[E]>[1]>[0];

/** Events the server emits. */
export interface ServerToClientEvents {
  'sync:changes': (changes: DeliveredChange[]) => void;
  'sync:bootstrap': (page: BootstrapPage) => void;
  /** Optional extension: the socket's token expired; re-join with a fresh token or be disconnected. */
  'sync:token_expired': (info: { code: 'UNAUTHENTICATED'; error: string; graceMs: number }) => void;
  /** Optional extension: sent right before the server disconnects the socket (e.g. `SLOW_CONSUMER`). */
  'sync:error': (info: { code: string; error: string; retryAfterMs?: number }) => void;
  /** Optional extension: the node is shutting down (rolling update); the socket is disconnected right after. */
  'sync:shutdown': (notice: ShutdownNotice) => void;
}

/**
 * `sync:shutdown`: sent to every socket of a node that is stopping, just before it disconnects them.
 * The client reconnects (to another node: the load balancer no longer routes to this one), after
 * `retryAfterMs` plus its own jitter, then resends its outbox and catches up from its cursor.
 */
export interface ShutdownNotice {
  reason: 'server_shutdown';
  /** Suggested wait before reconnecting, spread per socket so clients do not all come back at once. */
  retryAfterMs?: number;
}

export const EVENTS = {
  join: 'sync:join',
  subscribe: 'sync:subscribe',
  unsubscribe: 'sync:unsubscribe',
  updateSubscriptions: 'sync:update_subscriptions',
  change: 'sync:change',
  changeBatch: 'sync:changeBatch',
  getChanges: 'sync:get_changes',
  ping: 'ping',
  mongoUpsert: 'mongoUpsert',
  mongoDelete: 'mongoDelete',
  changes: 'sync:changes',
  bootstrap: 'sync:bootstrap',
  tokenExpired: 'sync:token_expired',
  syncError: 'sync:error',
  shutdown: 'sync:shutdown',
} as const;

/** Protocol limits and defaults (the server's config may tighten or loosen them). */
export const LIMITS = {
  collectionNameMax: 64,
  documentIdMax: 256,
  changeIdMax: 128,
  defaultMaxChangeBytes: 256 * 1024,
  defaultMaxBatchSize: 500,
  defaultGetChangesLimit: 500,
  maxGetChangesLimit: 5000,
  defaultBootstrapPageSize: 500,
  maxDepth: 32,
  maxArrayLength: 10000,
  filterMaxLength: 4096,
  maxArgs: 64,
  /** Characters in one string bound into a query (an argument, or an element of an IN argument). */
  maxQueryValueLength: 4096,
  /**
   * A query's text plus every argument it is given (strings by their length, other values as 4),
   * so arguments cannot carry what the text limit refuses.
   */
  maxBoundQuerySize: 65536,
} as const;

export const COLLECTION_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** True when a collection name is one a client may read or write. */
export function isUserCollectionName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    COLLECTION_NAME_RE.test(name) &&
    !name.startsWith('_sync') &&
    !name.startsWith('system.') &&
    name !== 'system' &&
    !name.startsWith('.') &&
    !name.endsWith('.') &&
    !name.includes('..')
  );
}
