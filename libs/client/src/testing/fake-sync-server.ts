/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * A small in-memory server speaking the sync protocol, for the SDK's unit tests: last write wins per
 * document, a change feed with cursors, subscriptions without filters, bootstrap pages, and hooks
 * to inject failures. It is not the real server (test/ has end-to-end suites against that).
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { encodeCursor, decodeCursor } from '../../../protocol/src/cursor';
import type { ClientChange, DeliveredChange, SyncDocument } from '../../../protocol/src/types';

interface Stored {
  doc: SyncDocument | null;
  ts: number;
}

/** Returns an ack to answer with instead of the normal handling, or undefined to proceed. */
export type Interceptor = (event: string, payload: any, socket: Socket) => any;

export class FakeSyncServer {
  url = '';
  readonly docs = new Map<string, Map<string, Stored>>();
  readonly feed: DeliveredChange[] = [];
  readonly applied = new Map<string, any>();
  readonly received: { event: string; payload: any }[] = [];
  /** Return false to refuse joins (and new connections). */
  accepting = true;
  bootstrapPageSize = 2;
  /** Tokens accepted (when set, a join needs one of them). */
  validTokens?: Set<string>;
  interceptors: Interceptor[] = [];
  /** Send live sync:changes to subscribers (false: they only learn through get_changes). */
  broadcast = true;
  /** Answers of these events are sent this many ms after they were computed (a slow server). */
  answerDelayMs: Partial<Record<string, number>> = {};
  /** An interceptor returning this swallows the request: no ack is sent. */
  static readonly NO_ACK = Symbol('no-ack');
  private http!: HttpServer;
  io!: Server;
  private subSeq = 0;

  /** Every handshake: its query and auth (what a client sent to connect). */
  readonly handshakes: { query: Record<string, unknown>; auth: Record<string, unknown> }[] = [];
  /** When set, a connection needs `query.access_token` to be one of these (as the Azure service would). */
  accessTokens?: Set<string>;

  async start(port = 0, opts: { maxHttpBufferSize?: number; path?: string } = {}): Promise<void> {
    this.http = createServer();
    this.io = new Server(this.http, { path: '/socket.io', ...opts });
    this.io.use((socket, next) => {
      const query = { ...(socket.handshake.query as Record<string, unknown>) };
      this.handshakes.push({ query, auth: { ...(socket.handshake.auth as Record<string, unknown>) } });
      if (this.accessTokens && !this.accessTokens.has(String(query.access_token))) return next(new Error('access token refused'));
      return this.accepting ? next() : next(new Error('server refusing'));
    });
    this.io.on('connection', (socket) => this.onConnection(socket));
    await new Promise<void>((resolve) => this.http.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  async stop(): Promise<void> {
    this.io.disconnectSockets(true);
    await this.io.close(); // settles once the HTTP server has closed
  }

  /** Drops every connection (clients reconnect by themselves). */
  dropAll(): void {
    this.io.disconnectSockets(true);
  }

  get(collection: string, id: string): SyncDocument | null | undefined {
    return this.docs.get(collection)?.get(id)?.doc;
  }

  count(event: string): number {
    return this.received.filter((r) => r.event === event).length;
  }

  /** Applies a change as if another client had sent it (and broadcasts it). */
  applyExternal(change: ClientChange, userId = 'someone-else'): any {
    return this.apply(change, userId, undefined);
  }

  private onConnection(socket: Socket): void {
    const on = (event: string, fn: (payload: any) => any) =>
      socket.on(event, async (payload: any, ack?: (r: any) => void) => {
        this.received.push({ event, payload });
        for (const i of this.interceptors) {
          const r = i(event, payload, socket);
          if (r === FakeSyncServer.NO_ACK) return;
          if (r !== undefined) return ack?.(r);
        }
        if (event !== 'sync:join' && !socket.data.userId) return ack?.({ success: false, code: 'UNAUTHENTICATED', error: 'join first' });
        const answer = await fn(payload ?? {});
        const delay = this.answerDelayMs[event];
        if (delay) await new Promise((r) => setTimeout(r, delay));
        ack?.(answer);
      });
    socket.data.subs = new Map<string, string>();
    on('sync:join', (p) => {
      if (!this.accepting) return { success: false, code: 'UNAVAILABLE', error: 'not accepting' };
      if (this.validTokens && !this.validTokens.has(p.token)) return { success: false, code: 'UNAUTHENTICATED', error: 'bad token' };
      socket.data.userId = p.userId ?? 'token-user';
      void socket.join(`user:${socket.data.userId}`);
      return { success: true, userId: socket.data.userId, timestamp: Date.now(), cursor: this.head() };
    });
    on('sync:subscribe', (p) => {
      const id = `sub-${++this.subSeq}`;
      socket.data.subs.set(id, p.collection);
      const docs = [...(this.docs.get(p.collection)?.values() ?? [])].filter((s) => s.doc).map((s) => s.doc!);
      if (p.bootstrap !== false) {
        const cursor = this.head();
        setImmediate(() => {
          const size = this.bootstrapPageSize;
          const pages = Math.max(1, Math.ceil(docs.length / size));
          for (let i = 0; i < pages; i++) {
            socket.emit('sync:bootstrap', {
              subscriptionId: id,
              collection: p.collection,
              data: docs.slice(i * size, (i + 1) * size),
              page: i,
              done: i === pages - 1,
              cursor,
            });
          }
        });
      }
      return { success: true, subscriptionId: id, count: docs.length };
    });
    on('sync:unsubscribe', (p) => {
      socket.data.subs.delete(p.subscriptionId);
      return { success: true, count: socket.data.subs.size };
    });
    on('sync:change', (c) => this.apply(c, socket.data.userId, socket));
    on('sync:changeBatch', (p) => {
      const results = (p.changes ?? []).map((c: ClientChange) => this.apply(c, socket.data.userId, socket));
      const ok = results.filter((r: any) => r.success).length;
      return { success: true, results, successCount: ok, failureCount: results.length - ok };
    });
    on('sync:get_changes', (p) => {
      const from = p.cursor ? (decodeCursor(p.cursor) ?? 0) : 0;
      const limit = p.limit ?? 500;
      const after = this.feed.filter((c) => decodeCursor(c.cursor)! > from);
      const page = after.slice(0, limit);
      const cursor = page.length ? page[page.length - 1].cursor : (p.cursor ?? this.head());
      return { success: true, changes: page, cursor, latestTimestamp: Date.now(), hasMore: after.length > limit };
    });
  }

  private head(): string {
    return encodeCursor(this.feed.length);
  }

  private apply(c: ClientChange, userId: string, sender: Socket | undefined): any {
    if (c.changeId && this.applied.has(c.changeId)) return { ...this.applied.get(c.changeId), duplicate: true };
    let col = this.docs.get(c.collection);
    if (!col) this.docs.set(c.collection, (col = new Map()));
    const cur = col.get(c.documentId);
    const ts = c.timestamp ?? (c.data?.sync_updated_at as number) ?? Date.now();
    if (cur && ts <= cur.ts) {
      const r = { success: false, code: 'CONFLICT', changeId: c.changeId, error: 'a newer version exists', timestamp: cur.ts, current: cur.doc };
      if (c.changeId) this.applied.set(c.changeId, r);
      return r;
    }
    let doc: SyncDocument | null = null;
    if (c.operation === 'insert') doc = { ...c.data, _id: c.documentId, sync_updated_at: ts, _updated_by: userId };
    else if (c.operation === 'update') doc = { ...(cur?.doc ?? {}), ...c.data, _id: c.documentId, sync_updated_at: ts, _updated_by: userId };
    col.set(c.documentId, { doc, ts });
    const delivered: DeliveredChange = {
      changeId: c.changeId ?? `srv-${this.feed.length + 1}`,
      operation: c.operation,
      collection: c.collection,
      documentId: c.documentId,
      ...(doc ? { data: doc } : {}),
      timestamp: ts,
      userId,
      serverTimestamp: Date.now(),
      cursor: encodeCursor(this.feed.length + 1),
    };
    this.feed.push(delivered);
    for (const s of this.io.sockets.sockets.values()) {
      if (!this.broadcast) break;
      if (s === sender || !s.data.userId) continue;
      if ([...s.data.subs.values()].includes(c.collection)) s.emit('sync:changes', [delivered]);
    }
    const r = { success: true, changeId: delivered.changeId, timestamp: ts, cursor: delivered.cursor };
    if (c.changeId) this.applied.set(c.changeId, r);
    return r;
  }
}
