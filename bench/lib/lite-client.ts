/* A minimal Socket.IO v4 client over a raw WebSocket (Engine.IO v4, websocket transport only,
 * text packets, default namespace). The load generator uses it instead of socket.io-client so that
 * thousands of sockets in a few processes cost the generator little: the server sees exactly the
 * same frames a real client sends (open → "40" connect → "42"/"43" events and acks, "2"/"3" heartbeats).
 *
 *   0{...}        Engine.IO open              2 / 3       ping / pong
 *   40{auth}      connect the namespace       40{"sid"}   connected      44{..} connect error
 *   42<id>[e,d]   event (id: ack wanted)      43<id>[d]   ack            41 disconnect
 */
import type { ClientToServerEvents, EventAck, EventRequest } from '@sync/protocol';
import WebSocket from 'ws';

export interface LiteConnectOptions {
  /** `handshake.auth` (e.g. `{ token }`). */
  auth?: Record<string, unknown>;
  timeoutMs?: number;
}

export class AckTimeoutError extends Error {
  constructor(event: string, ms: number) {
    super(`no ack for ${event} within ${ms} ms`);
  }
}

type Handler = (data: unknown, receivedAtMs: number) => void;

/** Wall-clock time in milliseconds with sub-millisecond resolution, comparable across processes. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

export class LiteSocket {
  private nextAck = 0;
  private readonly acks = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout }>();
  private readonly handlers = new Map<string, Handler[]>();
  private rawHandler?: (text: string, receivedAtMs: number) => boolean;
  closed = false;
  sid?: string;

  private constructor(private readonly ws: WebSocket) {}

  static connect(baseUrl: string, opts: LiteConnectOptions = {}): Promise<LiteSocket> {
    const url = `${baseUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: opts.timeoutMs ?? 20_000 });
    const sock = new LiteSocket(ws);
    return new Promise<LiteSocket>((resolve, reject) => {
      let done = false;
      const fail = (e: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.close();
        reject(e);
      };
      const timer = setTimeout(() => fail(new Error('connect timeout')), opts.timeoutMs ?? 20_000);
      ws.on('error', (e) => fail(e));
      ws.on('close', () => {
        sock.closed = true;
        for (const a of sock.acks.values()) {
          clearTimeout(a.timer);
          a.reject(new Error('socket closed'));
        }
        sock.acks.clear();
        fail(new Error('closed during connect'));
      });
      ws.on('message', (raw: Buffer, isBinary: boolean) => {
        const at = nowMs();
        if (isBinary) return;
        const text = raw.toString('utf8');
        const type = text.charCodeAt(0);
        if (type === 52 /* '4' message */) {
          const sub = text.charCodeAt(1);
          if (sub === 50 /* '2' event */) sock.onEvent(text, at);
          else if (sub === 51 /* '3' ack */) sock.onAck(text);
          else if (sub === 48 /* '0' connected */) {
            try {
              sock.sid = (JSON.parse(text.slice(2)) as { sid?: string }).sid;
            } catch {
              /* no payload */
            }
            if (!done) {
              done = true;
              clearTimeout(timer);
              resolve(sock);
            }
          } else if (sub === 52 /* '4' connect error */) {
            let msg = 'connect_error';
            try {
              msg = (JSON.parse(text.slice(2)) as { message?: string }).message ?? msg;
            } catch {
              /* keep default */
            }
            fail(new Error(msg));
          } else if (sub === 49 /* '1' disconnect */) sock.close();
        } else if (type === 50 /* '2' ping */) ws.send('3');
        else if (type === 48 /* '0' open */) ws.send(opts.auth ? `40${JSON.stringify(opts.auth)}` : '40');
        else if (type === 49 /* '1' close */) sock.close();
      });
    });
  }

  private onEvent(text: string, at: number): void {
    if (this.rawHandler && this.rawHandler(text, at)) return;
    let i = 2;
    while (i < text.length && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
    const args = JSON.parse(text.slice(i)) as unknown[];
    const list = this.handlers.get(args[0] as string);
    if (list) for (const h of list) h(args[1], at);
  }

  private onAck(text: string): void {
    let i = 2;
    while (i < text.length && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
    const id = Number(text.slice(2, i));
    const a = this.acks.get(id);
    if (!a) return;
    this.acks.delete(id);
    clearTimeout(a.timer);
    a.resolve((JSON.parse(text.slice(i)) as unknown[])[0]);
  }

  on(event: string, handler: Handler): void {
    const list = this.handlers.get(event) ?? [];
    list.push(handler);
    this.handlers.set(event, list);
  }

  /** Sees every event frame before it is parsed; return true to consume it. */
  onRawEvent(handler: (text: string, receivedAtMs: number) => boolean): void {
    this.rawHandler = handler;
  }

  emit(event: string, payload: unknown): void {
    if (!this.closed) this.ws.send(`42${JSON.stringify([event, payload])}`);
  }

  /** Emits a protocol event and resolves with its answer (both typed by the protocol's event map). */
  emitWithAck<E extends keyof ClientToServerEvents>(event: E, payload: EventRequest<E>, timeoutMs = 30_000): Promise<EventAck<E>> {
    if (this.closed) return Promise.reject(new Error('socket closed'));
    const id = this.nextAck++;
    return new Promise<EventAck<E>>((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.acks.delete(id);
              reject(new AckTimeoutError(event, timeoutMs));
            }, timeoutMs)
          : undefined;
      this.acks.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.ws.send(`42${id}${JSON.stringify([event, payload])}`);
    });
  }

  get pendingAcks(): number {
    return this.acks.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send('41');
      this.ws.close();
    } catch {
      this.ws.terminate();
    }
  }
}
