/* The floor of live delivery on this machine: what one small write to each of N loopback TCP
 * connections costs the writing process (user + system CPU per write, process.cpuUsage), with nothing
 * of Socket.IO, Engine.IO or the sync server in between. A direct WebSocket frame costs one such
 * write per socket per delivery step, so this bounds deliveries per server CPU-second when each step
 * carries one change. Loopback only; bounded (N connections × R rounds), it stops by itself.
 *
 *   npx tsx bench/tcp-floor.ts [--connections=1000] [--rounds=200] [--size=300]
 */
import { fork } from 'node:child_process';
import * as net from 'node:net';

const arg = (name: string, def: number): number => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  const n = a ? Number(a.split('=')[1]) : def;
  return Number.isFinite(n) && n > 0 ? Math.min(Math.round(n), 100_000) : def;
};

if (process.argv[2] === 'reader') {
  // the other end: connects and reads everything (its own process, like real clients)
  const [port, n] = [Number(process.argv[3]), Number(process.argv[4])];
  for (let i = 0; i < n; i++)
    net
      .connect(port, '127.0.0.1')
      .on('data', () => undefined)
      .on('error', () => undefined);
} else {
  const N = arg('connections', 1000);
  const R = arg('rounds', 200);
  const SIZE = arg('size', 300);
  const conns: net.Socket[] = [];
  const server = net.createServer((c) => {
    c.setNoDelay(true);
    c.on('error', () => undefined);
    conns.push(c);
  });
  server.listen(0, '127.0.0.1', () => {
    void (async () => {
      const port = (server.address() as net.AddressInfo).port;
      const reader = fork(__filename, ['reader', String(port), String(N)], { execArgv: process.execArgv });
      const deadline = Date.now() + 60_000;
      while (conns.length < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const frame = Buffer.alloc(SIZE, 0x78);
      const before = process.cpuUsage();
      const t0 = Date.now();
      for (let r = 0; r < R; r++) {
        for (const c of conns) c.write(frame);
        await new Promise((res) => setTimeout(res, 5));
      }
      const used = process.cpuUsage(before);
      const writes = conns.length * R;
      const us = (v: number) => (v / writes).toFixed(2);
      console.log(
        `${conns.length} connections × ${R} rounds of ${SIZE} bytes: ${us(used.user)} µs user + ${us(used.system)} µs system = ${us(used.user + used.system)} µs of CPU per write (${Math.round(writes / ((used.user + used.system) / 1e6))} writes per CPU-second; wall ${Date.now() - t0} ms)`,
      );
      reader.kill();
      for (const c of conns) c.destroy();
      server.close();
    })();
  });
}
