/**
 * The SDK's public types: options, events, the inspect() report, errors and subscription handles.
 * Re-exported unchanged by sync-client.ts (the public surface lives there).
 */
import type { ManagerOptions, SocketOptions } from 'socket.io-client';
import { ErrorCode } from '../../protocol/src/errors';
import type { ChangeAckSuccess, ChangeFields, Operation, SubscriptionSpec, SyncDocument } from '../../protocol/src/types';
import type { ViewChange } from './local-view';

/** Supplies a JWT; called at connect, and with `forceRefresh` after the server refused or expired one. */
export type TokenProvider = (opts: { forceRefresh: boolean }) => string | undefined | null | Promise<string | undefined | null>;

export interface SyncClientLogger {
  debug?(msg: string, ...rest: unknown[]): void;
  info?(msg: string, ...rest: unknown[]): void;
  warn(msg: string, ...rest: unknown[]): void;
  error(msg: string, ...rest: unknown[]): void;
}

export interface SyncClientOptions {
  /** A JWT to authenticate with (sent in the handshake and in sync:join). */
  token?: string;
  /** Called for a token at connect and again (forceRefresh) when the server reports it expired. */
  getToken?: TokenProvider;
  /** Subscriptions to hold from the start (same as calling subscribe()). */
  subscriptions?: SubscriptionSpec[];
  /** Socket.IO transports (default: polling then upgrade to websocket, as socket.io does). */
  transports?: ('websocket' | 'polling')[];
  /** Most changes per sync:changeBatch (default 500, the server's default MAX_BATCH_SIZE). */
  maxBatchSize?: number;
  /** Most bytes of JSON per batch (default 768 KiB, under the server's default 1 MiB message limit). */
  maxBatchBytes?: number;
  /** Largest change accepted by makeChange, in bytes of JSON (default 256 KiB, as MAX_CHANGE_BYTES). */
  maxChangeBytes?: number;
  /** Page size of sync:get_changes (default 500). */
  getChangesLimit?: number;
  /** How long to wait for any ack (default 20 s). */
  ackTimeoutMs?: number;
  /** connect() rejects when not synced within this time (default 15 s); the client keeps trying. */
  connectTimeoutMs?: number;
  /** Read the change feed at least this often while connected (default 30 s; 0: only on reconnect and after writes). */
  catchUpIntervalMs?: number;
  /** Disconnect at once when the browser reports it is offline, reconnect when online (default true). */
  watchNetwork?: boolean;
  /** Where log lines go (default console; null: silent). */
  logger?: SyncClientLogger | null;
  /** The clock for sync_updated_at (default Date.now). */
  now?: () => number;
  /** Extra Socket.IO client options. */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /** First reconnect delay (default 1 s); doubles per failed attempt, with jitter. */
  reconnectDelayMs?: number;
  /**
   * Longest wait between reconnects and between retries of a transient failure (default 5 min):
   * after a deploy or an outage, clients come back spread out instead of in a storm.
   */
  maxRetryDelayMs?: number;
  /**
   * What a client reset (CURSOR_EXPIRED: offline longer than the server keeps its change feed) does
   * with unsent local changes: `recoverUnsyncedChanges` (default) keeps and sends them after the
   * fresh bootstrap; `discardUnsyncedChanges` drops them (rolled back, listed in the `reset` event).
   * A function decides per reset.
   */
  clientResetMode?: ClientResetMode | ((info: { pending: PendingChange[] }) => ClientResetMode | Promise<ClientResetMode>);
  /**
   * Start every (re)connect from a negotiate URL (Azure Web PubSub for Socket.IO, docs/SDK.md
   * "Connecting through Azure Web PubSub"): e.g. `/api/negotiate` (relative to serverUrl). The client
   * GETs it with the app's token as `Authorization: Bearer` and connects to the answer's `endpoint`
   * and `path` with `query.access_token`, the app's JWT still in `auth.token`. It negotiates again
   * when the answer's `expiresAt` is less than a minute away or a connection with it was refused.
   * A 501 (the server is not in Azure mode) means: connect to serverUrl directly. A failed or odd
   * answer is an `error` event (code NEGOTIATE_FAILED or UNAUTHENTICATED) and a retry after the
   * reconnect backoff.
   */
  negotiateUrl?: string;
  /** Most time for one negotiate request, answer included (default 10 s). */
  negotiateTimeoutMs?: number;
}

export type ClientResetMode = 'recoverUnsyncedChanges' | 'discardUnsyncedChanges';

/** A change the app made, as makeChange reports it. */
export type PendingChange = ChangeFields;

export interface SyncClientEvents {
  /** Joined (true) or lost the connection (false). */
  online: (online: boolean) => void;
  /** The number of unacknowledged changes changed. */
  pending: (count: number) => void;
  /** A visible document changed (local, remote, rollback, ...). */
  change: (change: ViewChange) => void;
  /** A catch-up finished: everything up to `cursor` has been read. */
  synced: (info: { cursor: string | null; pending: number; timestamp: number }) => void;
  /** The server applied a local change. */
  acked: (info: { change: PendingChange; ack: ChangeAckSuccess }) => void;
  /** A local change lost its conflict: the view now shows the server's `current` (null: deleted). */
  conflict: (info: { change: PendingChange; current: SyncDocument | null; timestamp?: number }) => void;
  /** The server refused a local change for good (FORBIDDEN, INVALID_PAYLOAD, ...): it was rolled back. */
  rejected: (info: { change: PendingChange; code: SyncErrorCode; error: string }) => void;
  /** A bootstrap page was applied. */
  bootstrap: (info: { collection: string; subscriptionId: string; page: number; count: number; done: boolean }) => void;
  /**
   * Client reset: the stored cursor expired (CURSOR_EXPIRED); the client bootstraps again. `mode`
   * says whether unsent changes were kept or discarded (`discarded` lists them).
   */
  reset: (info: { reason: string; mode: ClientResetMode; discarded: PendingChange[] }) => void;
  /**
   * The server closed the connection on purpose (`sync:shutdown` during a deploy, `SLOW_CONSUMER`
   * when this client could not keep up): the client reconnects after `retryInMs` and catches up.
   */
  disconnected: (info: { reason: string; code?: string; retryInMs?: number }) => void;
  /** An error; protocol failures are SyncClientError with the protocol's `code`. */
  error: (error: Error) => void;
}

/** Where one outbox entry stands (see inspect()). */
export type OutboxEntryState = 'storing' | 'queued' | 'sending' | 'retrying';

/** What client.inspect() returns: everything needed to see why something has not synced. */
export interface InspectReport {
  userId: string;
  serverUrl: string;
  online: boolean;
  /** The stored feed position (catch-up starts there). */
  cursor: string | null;
  lastSyncTimestamp: number;
  storage: { kind: string; durable: boolean };
  /** Reconnect backoff: failed attempts in a row and when the next one is due (UTC ms), if scheduled. */
  reconnect: { attempt: number; nextAt: number | null };
  /**
   * Where the client connects: `direct` (serverUrl), or with `negotiateUrl` what the last negotiate
   * said (`negotiated`: through the service, until `expiresAt`; `direct` after a 501). Null before
   * the first negotiate. The access token is never shown.
   */
  connection: { via: 'direct' | 'negotiated'; endpoint: string; path: string; expiresAt: number | null } | null;
  outbox: {
    changeId: string;
    seq: number;
    operation: Operation;
    collection: string;
    documentId: string;
    timestamp: number;
    createdAt: number;
    state: OutboxEntryState;
    /** Times it was sent without a final answer. */
    attempts: number;
    lastError: { code: string; message: string; at: number } | null;
  }[];
  subscriptions: {
    key: string;
    collection: string;
    filter?: string;
    args?: unknown[];
    /** The server's id in this session (none while offline). */
    id: string | null;
    count: number | null;
    /** bootstrapped: its documents are stored; bootstrapping: pages are arriving; pending: not sent yet. */
    state: 'bootstrapped' | 'bootstrapping' | 'pending';
  }[];
  /** Visible documents per collection (pending local changes included). */
  documents: Record<string, number>;
  /** The last error reported through the `error` or `rejected` event. */
  lastError: { code: string; message: string; at: number } | null;
}

/**
 * The codes a SyncClientError (and a `rejected` event) carries: the protocol's, those of server
 * notices and optional protocol extensions, and the client's own (OFFLINE, TIMEOUT, CLOSED). A code
 * a newer server sends that this list does not know still comes through as a string.
 */
export type SyncErrorCode =
  ErrorCode | 'SCHEMA_VIOLATION' | 'SLOW_CONSUMER' | 'SHUTDOWN' | 'OFFLINE' | 'TIMEOUT' | 'CLOSED' | 'NEGOTIATE_FAILED' | (string & {});

/** An error of the client, with a protocol code (see SyncErrorCode). */
export class SyncClientError extends Error {
  constructor(
    readonly code: SyncErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SyncClientError';
  }
}

export interface Subscription {
  readonly key: string;
  readonly collection: string;
  readonly filter?: string;
  readonly args?: unknown[];
  /** The server's id while connected. */
  readonly id: string | undefined;
  /** Number of visible matching documents the server reported when it last subscribed. */
  readonly count: number | undefined;
  unsubscribe(): Promise<void>;
}
