/* Memory per idle socket of a bare Socket.IO server with the same events as the sync server (no Nest,
 * no RxJS), for comparison with the `connections` scenario:
 *   npx tsx bench/baseline-socketio.ts [--connections=2000] [--handlers=8]
 * The server runs in a child process (node --expose-gc); the sockets (minimal clients, as in the
 * harness) join like the real ones: an acked "sync:join" that puts the socket in two rooms. */
import { fork } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LiteSocket } from './lib/lite-client';

const arg = (k: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3) ?? d);
const EVENTS = [
  'sync:join',
  'ping',
  'sync:change',
  'sync:changeBatch',
  'sync:get_changes',
  'sync:subscribe',
  'mongoUpsert',
  'mongoDelete',
  'sync:unsubscribe',
  'sync:update_subscriptions',
];

async function child() {
  const { Server } = await import('socket.io');
  const handlers = arg('handlers', 8);
  const httpServer = http.createServer();
  const io = new Server(httpServer, { path: '/socket.io', transports: ['websocket', 'polling'], pingInterval: 25_000, pingTimeout: 20_000 });
  io.on('connection', (socket) => {
    for (const ev of EVENTS.slice(0, handlers)) {
      socket.on(ev, async (payload: { userId?: string } | undefined, ack?: (r: unknown) => void) => {
        if (ev === 'sync:join') {
          socket.data.user = { id: payload?.userId };
          await socket.join([`user:${payload?.userId}`, 'joined']);
        }
        if (typeof ack === 'function') ack({ success: true, timestamp: Date.now() });
      });
    }
  });
  httpServer.listen(0, '127.0.0.1', () => process.send!({ port: (httpServer.address() as AddressInfo).port }));
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'memory') {
      global.gc?.();
      global.gc?.();
      process.send!({ memory: process.memoryUsage() });
    } else if (m.cmd === 'exit') process.exit(0);
  });
  process.on('disconnect', () => process.exit(0));
}

async function main() {
  const n = arg('connections', 2000);
  const c = fork(__filename, ['--child', ...process.argv.slice(2)], { execArgv: ['--expose-gc', '-r', 'tsx/cjs'] });
  const next = <T>() => new Promise<T>((resolve) => c.once('message', (m) => resolve(m as T)));
  const { port } = await next<{ port: number }>();
  const url = `http://127.0.0.1:${port}`;
  const mem = async () => {
    c.send({ cmd: 'memory' });
    return (await next<{ memory: NodeJS.MemoryUsage }>()).memory;
  };
  await new Promise((r) => setTimeout(r, 500));
  const before = await mem();
  const sockets: LiteSocket[] = [];
  for (let i = 0; i < n; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, async (_, k) => {
        const s = await LiteSocket.connect(url);
        await s.emitWithAck('sync:join', { userId: `u${i + k}` });
        sockets.push(s);
      }),
    );
  }
  await new Promise((r) => setTimeout(r, 1000));
  const after = await mem();
  const per = (k: 'heapUsed' | 'rss') => Math.round((after[k] - before[k]) / n / 102.4) / 10;
  console.log(`bare socket.io, ${arg('handlers', 8)} handlers, ${n} joined sockets: heap ${per('heapUsed')} KB, RSS ${per('rss')} KB per socket`);
  for (const s of sockets) s.close();
  c.send({ cmd: 'exit' });
}

if (process.argv.includes('--child')) void child();
else
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
