import WebSocket from 'ws';

/**
 * A bare Socket.IO v4 client over one WebSocket, speaking the wire format by hand, so a test can send
 * frames the real client would refuse to build (100 000-deep JSON, broken packets, huge frames).
 * Engine.IO: `0` open, `2`/`3` ping/pong, `4` message; Socket.IO inside a message: `0` connect,
 * `2` event, `3` ack, `4` connect error.
 */
export class RawSocket {
  private nextAck = 1;
  private readonly pending = new Map<number, (args: unknown[]) => void>();
  private connected?: { resolve: () => void; reject: (e: Error) => void };
  closed = false;
  /** Events the server sent (`[name, ...args]`), recorded when `recordEvents` is set. */
  readonly events: unknown[][] = [];
  recordEvents = false;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (buf) => this.onFrame(buf.toString()));
    ws.on('close', () => {
      this.closed = true;
      this.connected?.reject(new Error('closed before connect'));
      for (const resolve of this.pending.values()) resolve([{ closed: true }]);
      this.pending.clear();
    });
    ws.on('error', () => undefined);
  }

  /** Opens the WebSocket and connects to the `/` namespace (with `auth` as the handshake's auth). */
  static async connect(baseUrl: string, auth?: Record<string, unknown>, headers?: Record<string, string>): Promise<RawSocket> {
    const url = `${baseUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
    const sock = new RawSocket(new WebSocket(url, { headers }));
    await new Promise<void>((resolve, reject) => {
      sock.connected = { resolve, reject };
      sock.ws.once('open', () => sock.ws.send(`40${auth ? JSON.stringify(auth) : ''}`));
    });
    return sock;
  }

  private onFrame(frame: string): void {
    if (frame === '2') return void this.ws.send('3');
    if (!frame.startsWith('4')) return;
    const packet = frame.slice(1);
    if (packet.startsWith('0')) this.connected?.resolve();
    else if (packet.startsWith('2') && this.recordEvents) this.events.push(JSON.parse(packet.slice(1)) as unknown[]);
    else if (packet.startsWith('4')) this.connected?.reject(Object.assign(new Error('connect_error'), { packet }));
    else if (packet.startsWith('3')) {
      const m = /^3(\d+)(.*)$/s.exec(packet);
      if (!m) return;
      const resolve = this.pending.get(Number(m[1]));
      this.pending.delete(Number(m[1]));
      resolve?.(JSON.parse(m[2]));
    }
  }

  /** Sends `event` with a payload given as raw JSON text; resolves with the ack's first argument. */
  emitRaw(event: string, payloadJson: string, timeoutMs = 20_000): Promise<unknown> {
    const id = this.nextAck++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no ack for ${event} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (args) => {
        clearTimeout(timer);
        resolve(args[0]);
      });
      this.ws.send(`42${id}${JSON.stringify([event]).slice(0, -1)},${payloadJson}]`);
    });
  }

  /** Stops reading from the TCP connection (the server's writes pile up): a client that does not consume. */
  pause(): void {
    (this.ws as unknown as { _socket?: { pause(): void } })._socket?.pause();
  }

  /** Sends one raw Engine.IO frame as is. */
  sendFrame(frame: string | Buffer): void {
    this.ws.send(frame);
  }

  /** Stops reading from the connection (a client that no longer consumes what it is sent). */
  pauseReading(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  resumeReading(): void {
    (this.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  }

  close(): void {
    this.ws.close();
  }

  /** Resolves once the server has closed the connection. */
  waitClosed(timeoutMs = 10_000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('still open')), timeoutMs);
      this.ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
