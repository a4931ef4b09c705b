/* A MongoDB wire-protocol spy: a TCP proxy between the server and the database that times every
 * command (OP_MSG request → its reply) and groups them by command and collection. With --db-spy the
 * server talks to the database through it, so the report says which database round trips the
 * server's time goes to. It forwards bytes untouched; parsing is only for the statistics. */
import * as net from 'node:net';

const OP_MSG = 2013;

export interface CommandStat {
  command: string;
  count: number;
  totalMs: number;
  meanMs: number;
  maxMs: number;
}

/** First element of the command document: its name is the command, a string value the collection. */
function describe(msg: Buffer): string | null {
  if (msg.length < 21 || msg.readInt32LE(12) !== OP_MSG) return null;
  let p = 20; // header (16) + flagBits (4)
  // skip kind-1 sections until the kind-0 body (the body usually comes first)
  while (p < msg.length) {
    const kind = msg[p];
    if (kind === 0) {
      p += 1;
      const docStart = p;
      const type = msg[docStart + 4];
      let e = docStart + 5;
      while (e < msg.length && msg[e] !== 0) e++;
      const name = msg.toString('latin1', docStart + 5, e);
      let coll = '';
      if (type === 2) {
        const len = msg.readInt32LE(e + 1);
        coll = msg.toString('utf8', e + 5, e + 5 + len - 1);
      }
      return coll ? `${name} ${coll}` : name;
    }
    if (kind === 1) {
      p += 1 + msg.readInt32LE(p + 1);
      continue;
    }
    return null;
  }
  return null;
}

class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (f: Buffer) => void) {}
  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 4) {
      const len = this.buf.readInt32LE(0);
      if (len < 16 || this.buf.length < len) break;
      this.onFrame(this.buf.subarray(0, len));
      this.buf = this.buf.subarray(len);
    }
  }
}

export class WireSpy {
  private server?: net.Server;
  private readonly stats = new Map<string, { count: number; total: number; max: number }>();
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {}

  async start(): Promise<number> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.upstreamPort, this.upstreamHost);
      this.sockets.add(client);
      this.sockets.add(upstream);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      const pending = new Map<number, { what: string; t0: number }>();
      const req = new FrameReader((f) => {
        const what = describe(f);
        if (what) pending.set(f.readInt32LE(4), { what, t0: performance.now() });
      });
      const res = new FrameReader((f) => {
        const p = pending.get(f.readInt32LE(8));
        if (!p) return;
        pending.delete(f.readInt32LE(8));
        const dt = performance.now() - p.t0;
        const s = this.stats.get(p.what) ?? { count: 0, total: 0, max: 0 };
        s.count++;
        s.total += dt;
        if (dt > s.max) s.max = dt;
        this.stats.set(p.what, s);
      });
      client.on('data', (c: Buffer) => {
        upstream.write(c);
        req.push(c);
      });
      upstream.on('data', (c: Buffer) => {
        client.write(c);
        res.push(c);
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', close);
      upstream.on('close', close);
      client.on('error', close);
      upstream.on('error', close);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  reset(): void {
    this.stats.clear();
  }

  /** Commands by total time, heaviest first. */
  snapshot(top = 15): CommandStat[] {
    return [...this.stats.entries()]
      .map(([command, s]) => ({
        command,
        count: s.count,
        totalMs: Math.round(s.total),
        meanMs: Math.round((s.total / s.count) * 100) / 100,
        maxMs: Math.round(s.max * 10) / 10,
      }))
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, top);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
