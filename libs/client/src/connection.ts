/**
 * The connection: the socket's lifecycle (direct, or through a negotiate URL), the token, the
 * reconnect backoff, the browser's online/offline events, the server's close notices, and the
 * session: one AbortController per connected session, aborted when it ends. Requests with an ack,
 * join and rejoin go through here.
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { ErrorCode } from '../../protocol/src/errors';
import type { ClientToServerEvents, JoinAck, JoinRequest, ServerToClientEvents } from '../../protocol/src/types';
import { SyncClientError, type SyncClientLogger, type SyncClientOptions } from './client-types';
import { validHint, type Emit } from './client-internals';
import { negotiate, NegotiateError, type NegotiatedTarget } from './negotiate';
import {
  readAnswer,
  readBootstrapPage,
  readChanges,
  readShutdownNotice,
  readSyncError,
  type AnswerOf,
  type BootstrapPageIn,
  type DeliveredChangeIn,
  type RequestEvent,
  type RequestOf,
} from './server-messages';
import { backoffDelay } from './util';

/** A negotiated access token is renewed when less than this is left before its expiresAt. */
const NEGOTIATE_RENEW_MS = 60_000;

/** What the connection needs from the client. */
export interface ConnectionDeps {
  readonly serverUrl: string;
  readonly userId: string;
  readonly options: SyncClientOptions;
  readonly opts: { readonly ackTimeoutMs: number; readonly reconnectDelayMs: number; readonly maxRetryDelayMs: number; readonly watchNetwork: boolean };
  readonly log: SyncClientLogger | null;
  emit: Emit;
  /** A socket connected: run a session on it. */
  onConnect(): Promise<void>;
  /** The session ended (subscriptions forget their server ids, the session loop wakes up). */
  sessionEnded(): void;
  /** sync:join succeeded (the first cursor is stored). */
  afterJoin(ack: JoinAck): Promise<void>;
  onLiveChanges(changes: DeliveredChangeIn[]): void;
  onBootstrapPage(page: BootstrapPageIn): Promise<void>;
}

export class Connection {
  reconnectAt: number | null = null;
  socket?: Socket<ServerToClientEvents, ClientToServerEvents>;
  /** One per session: aborted when the session ends (a disconnect, a failure, a fresh connect). */
  sessionAbort = new AbortController();
  /** A session (runSession) is under way on the current socket. */
  sessionRunning = false;
  joined = false;
  wantOnline = false;
  closed = false;
  token?: string;
  tokenStale = false;
  reconnectTimer?: ReturnType<typeof setTimeout>;
  reconnectAttempt = 0;
  /** Why the server is about to close this socket (sync:shutdown, SLOW_CONSUMER), if it said so. */
  serverCloseHint?: { reason: string; code: string; retryAfterMs?: number };
  networkCleanup?: () => void;
  /** With negotiateUrl: the last negotiate answer, a connect attempt under way, its cancellation. */
  negotiated?: NegotiatedTarget;
  opening = false;
  openSeq = 0;
  negotiateAbort?: AbortController;

  constructor(private readonly d: ConnectionDeps) {
    this.token = d.options.token;
  }

  /**
   * With negotiateUrl: negotiates (unless the last answer is still good), then connects a fresh
   * socket where the answer says. Failures are reported and retried after the reconnect backoff.
   */
  async openNegotiated(): Promise<void> {
    if (this.opening || this.closed || !this.wantOnline || this.socket?.connected) return;
    this.opening = true;
    const seq = ++this.openSeq;
    clearTimeout(this.reconnectTimer);
    this.reconnectAt = null;
    try {
      let target = this.negotiated;
      // a negotiated token is used while more than a minute is left; a 501 is asked again each time
      if (!target || target.via === 'direct' || (target.expiresAt ?? 0) - Date.now() < NEGOTIATE_RENEW_MS) {
        target = undefined;
        this.negotiated = undefined;
        const abort = new AbortController();
        this.negotiateAbort = abort;
        const token = await this.currentToken(this.tokenStale);
        if (seq !== this.openSeq) return;
        const url = new URL(this.d.options.negotiateUrl!, this.d.serverUrl).toString();
        target = await negotiate({
          url,
          token,
          userId: this.d.userId || undefined,
          fallback: { endpoint: this.d.serverUrl, path: (this.d.options.socketOptions?.path as string | undefined) ?? '/socket.io' },
          timeoutMs: this.d.options.negotiateTimeoutMs ?? 10_000,
          signal: abort.signal,
        });
        if (seq !== this.openSeq) return;
        this.negotiated = target;
        if (target.via === 'direct') this.d.log?.debug?.(`sync-client: ${url} answered 501: connecting to ${this.d.serverUrl} directly`);
      }
      if (this.closed || !this.wantOnline) {
        this.opening = false;
        return;
      }
      this.disposeSocket();
      this.createSocket(target);
      this.socket!.connect();
    } catch (e) {
      if (seq !== this.openSeq) return;
      this.opening = false;
      const err =
        e instanceof NegotiateError ? new SyncClientError(e.code, e.message) : new SyncClientError('NEGOTIATE_FAILED', `negotiate: ${(e as Error).message}`);
      if (e instanceof NegotiateError && e.code === 'UNAUTHENTICATED') this.tokenStale = true;
      this.d.log?.warn(`sync-client: ${err.message}`);
      this.d.emit('error', err);
      if (this.wantOnline && !this.closed) this.scheduleReconnect();
    } finally {
      if (seq === this.openSeq) this.negotiateAbort = undefined;
    }
  }

  /** A negotiate or connect attempt under way (negotiateUrl) stops here. */
  cancelOpening(): void {
    this.openSeq++;
    this.opening = false;
    this.negotiateAbort?.abort();
    this.negotiateAbort = undefined;
  }

  /** Drops the current socket for good (its listeners first: it reports nothing more). */
  disposeSocket(): void {
    const old = this.socket;
    if (!old) return;
    this.socket = undefined;
    old.removeAllListeners();
    old.disconnect();
    if (this.joined || this.sessionRunning) this.endSession();
  }

  createSocket(target?: NegotiatedTarget): void {
    // through a negotiated endpoint each attempt gets a fresh socket (and a fresh token), so
    // socket.io's own reconnection is off: the client reconnects (openNegotiated) after its backoff
    const via: Partial<ManagerOptions & SocketOptions> = target
      ? {
          path: target.path,
          forceNew: true,
          reconnection: false,
          ...(target.accessToken ? { query: { ...(this.d.options.socketOptions?.query ?? {}), access_token: target.accessToken } } : {}),
        }
      : {};
    const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(target?.endpoint ?? this.d.serverUrl, {
      path: '/socket.io',
      autoConnect: false,
      reconnection: true,
      // socket.io's own reconnects (a dropped transport): exponential up to minutes, +-50 % jitter
      reconnectionDelay: this.d.opts.reconnectDelayMs,
      reconnectionDelayMax: this.d.opts.maxRetryDelayMs,
      randomizationFactor: 0.5,
      timeout: 10_000,
      ...(this.d.options.transports ? { transports: this.d.options.transports } : {}),
      auth: (cb: (data: object) => void) => {
        this.currentToken(this.tokenStale).then(
          (token) => cb(token ? { token } : {}),
          () => cb({}),
        );
      },
      ...this.d.options.socketOptions,
      ...via,
    });
    this.socket = socket;
    socket.on('connect', () => {
      this.reconnectAt = null;
      this.opening = false;
      void this.d.onConnect();
    });
    socket.on('disconnect', (reason) => {
      const wasOnline = this.joined;
      this.endSession();
      if (wasOnline) this.d.emit('online', false);
      this.d.log?.debug?.(`sync-client: disconnected (${reason})`);
      // the server closed us on purpose: socket.io will not reconnect by itself
      if (reason === 'io server disconnect' && this.wantOnline) {
        const hint = this.serverCloseHint;
        this.serverCloseHint = undefined;
        this.scheduleReconnect(hint?.retryAfterMs);
        this.d.emit('disconnected', {
          reason: hint?.reason ?? reason,
          code: hint?.code,
          retryInMs: this.reconnectAt ? this.reconnectAt - Date.now() : undefined,
        });
      } else if (target && reason !== 'io client disconnect' && this.wantOnline) {
        // a dropped connection through the service: socket.io's reconnection is off (see above)
        this.scheduleReconnect();
      }
    });
    socket.on('connect_error', (err) => {
      this.d.log?.debug?.(`sync-client: connect error: ${err.message}`);
      if (/unauthori[sz]ed/i.test(err.message)) this.tokenStale = true;
      if (target) {
        // refused (an expired or unknown access token, ...): negotiate again before the next attempt
        this.opening = false;
        this.negotiated = undefined;
        if (this.wantOnline) this.scheduleReconnect();
        return;
      }
      // refused by a server middleware: socket.io does not retry by itself
      if (!socket.active && this.wantOnline) this.scheduleReconnect();
    });
    // what the server pushes is parsed with the protocol's schemas; a malformed message is reported
    socket.on('sync:changes', (raw) => {
      const changes = readChanges(raw, this.report);
      if (changes.length) this.d.onLiveChanges(changes);
    });
    socket.on('sync:bootstrap', (raw) => {
      const page = readBootstrapPage(raw, this.report);
      if (page) void this.d.onBootstrapPage(page);
    });
    // the server is going away (rolling deploy): it will close this socket; come back spread out
    socket.on('sync:shutdown', (raw) => {
      const retryAfterMs = validHint(readShutdownNotice(raw, this.report)?.retryAfterMs);
      this.serverCloseHint = { reason: 'shutdown', code: 'SHUTDOWN', retryAfterMs };
      this.d.log?.info?.(`sync-client: the server is shutting down; reconnecting in about ${retryAfterMs ?? 'a few'} ms`);
    });
    // an error notice outside any ack, e.g. SLOW_CONSUMER: this client fell behind the live stream
    socket.on('sync:error', (raw) => {
      const info = readSyncError(raw, this.report);
      const code = info ? info.code.slice(0, 64) : 'INTERNAL';
      const message = (info?.error ?? code).slice(0, 500);
      this.d.emit('error', new SyncClientError(code, `server: ${message}`));
      if (code === 'SLOW_CONSUMER' || code === 'SHUTDOWN') {
        // live changes may have been dropped: reconnect after a backoff and catch up from the cursor
        this.serverCloseHint = { reason: code === 'SHUTDOWN' ? 'shutdown' : 'slow-consumer', code, retryAfterMs: validHint(info?.retryAfterMs) };
        if (this.socket?.connected) {
          this.socket.disconnect();
          const hint = this.serverCloseHint;
          this.serverCloseHint = undefined;
          this.endSession();
          if (this.wantOnline) this.scheduleReconnect(hint.retryAfterMs);
          this.d.emit('disconnected', { reason: hint.reason, code, retryInMs: this.reconnectAt ? this.reconnectAt - Date.now() : undefined });
        }
      }
    });
    socket.on('sync:token_expired', () => {
      this.tokenStale = true;
      void this.rejoin(this.sessionAbort.signal);
    });
  }

  /**
   * Reconnects after a jittered exponential backoff (reconnectDelayMs doubling up to
   * maxRetryDelayMs; the attempt count resets only after a completed sync), or after the server's
   * hint plus up to as much again of jitter, whichever is longer.
   */
  scheduleReconnect(hintMs?: number): void {
    clearTimeout(this.reconnectTimer);
    let delay = backoffDelay(this.reconnectAttempt++, this.d.opts.reconnectDelayMs, this.d.opts.maxRetryDelayMs);
    if (hintMs !== undefined) delay = Math.max(delay, Math.round(hintMs * (1 + Math.random())));
    this.reconnectAt = Date.now() + delay;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectAt = null;
      if (this.d.options.negotiateUrl) void this.openNegotiated();
      else if (this.wantOnline && this.socket && !this.socket.connected) this.socket.connect();
    }, delay);
  }

  watchNetwork(): void {
    if (!this.d.opts.watchNetwork || this.networkCleanup) return;
    const g = globalThis as unknown as {
      addEventListener?: (t: string, f: () => void) => void;
      removeEventListener?: (t: string, f: () => void) => void;
      navigator?: { onLine?: boolean };
    };
    if (typeof g.addEventListener !== 'function' || typeof g.navigator?.onLine !== 'boolean') return;
    const offline = () => {
      this.d.log?.debug?.('sync-client: the browser went offline');
      this.cancelOpening();
      this.socket?.disconnect();
      this.endSession();
    };
    const online = () => {
      if (this.d.options.negotiateUrl) void this.openNegotiated();
      else if (this.wantOnline && this.socket && !this.socket.connected) this.socket.connect();
    };
    g.addEventListener('offline', offline);
    g.addEventListener('online', online);
    this.networkCleanup = () => {
      g.removeEventListener?.('offline', offline);
      g.removeEventListener?.('online', online);
    };
  }

  endSession(): void {
    this.sessionAbort.abort();
    this.sessionAbort = new AbortController();
    this.joined = false;
    this.sessionRunning = false;
    this.d.sessionEnded();
  }

  async currentToken(force: boolean): Promise<string | undefined> {
    if (this.d.options.getToken && (force || !this.token)) {
      const t = await this.d.options.getToken({ forceRefresh: force });
      this.token = t ?? undefined;
      this.tokenStale = false;
    }
    return this.token;
  }

  /** A malformed server message: an error event (and a warning in the log). */
  readonly report = (e: SyncClientError): void => {
    this.d.log?.warn(`sync-client: ${e.message}`);
    this.d.emit('error', e);
  };

  /**
   * Emits an event with an ack (rejects when offline, on timeout or when the socket drops); the
   * answer is parsed with the protocol's schema (a malformed one is reported and is an INTERNAL failure).
   */
  async request<E extends RequestEvent>(event: E, payload: RequestOf<E>, timeoutMs = this.d.opts.ackTimeoutMs): Promise<AnswerOf<E>> {
    const socket = this.socket;
    if (!socket?.connected) throw new SyncClientError('OFFLINE', 'not connected');
    const timed = socket.timeout(timeoutMs);
    const emit = timed.emitWithAck as (ev: E, p: RequestOf<E>) => Promise<unknown>;
    return readAnswer(event, await emit.call(timed, event, payload), this.report);
  }

  /** Waits `ms`, or less when the session `s` ends meanwhile. */
  sleep(ms: number, s: AbortSignal): Promise<void> {
    if (s.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const ended = () => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        s.removeEventListener('abort', ended);
        resolve();
      }, ms);
      s.addEventListener('abort', ended, { once: true });
    });
  }

  /** Jittered exponential backoff for transient failures (from reconnectDelayMs / 2), up to maxRetryDelayMs. */
  retryDelay(attempt: number): number {
    return backoffDelay(attempt, this.d.opts.reconnectDelayMs / 2, this.d.opts.maxRetryDelayMs);
  }

  async join(s: AbortSignal): Promise<JoinAck> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.currentToken(attempt > 0 || this.tokenStale);
      const req: JoinRequest = {};
      if (this.d.userId) req.userId = this.d.userId;
      if (token) req.token = token;
      const ack = await this.request('sync:join', req);
      if (s.aborted) return ack as JoinAck;
      if (ack.success === true) {
        await this.d.afterJoin(ack);
        return ack;
      }
      const code = ack.code;
      if (code === ErrorCode.UNAUTHENTICATED && this.d.options.getToken && attempt === 0) continue;
      if (code === ErrorCode.RATE_LIMITED || code === ErrorCode.UNAVAILABLE) {
        await this.sleep(validHint(ack.retryAfterMs) ?? this.retryDelay(attempt), s);
        if (s.aborted) return ack as unknown as JoinAck;
        continue;
      }
      throw new SyncClientError(code, `join refused: ${ack.error}`);
    }
  }

  /** Re-joins on the same socket with a fresh token (token expired, or UNAUTHENTICATED). */
  async rejoin(s: AbortSignal): Promise<void> {
    if (s.aborted || !this.socket?.connected) return;
    try {
      this.tokenStale = true;
      await this.join(s);
    } catch (e) {
      if (s.aborted) return;
      this.d.emit('error', e as Error);
      this.socket?.disconnect();
      this.endSession();
      if (this.wantOnline) this.scheduleReconnect();
    }
  }
}
