/* What one round trip costs after the machine has been idle, against back to back: a loopback TCP
 * echo to another Node process, and a findOne by _id on the database. An open-loop writer at a low
 * rate (the fan-out scenario's 20 changes/s) starts every change from idle processes and pays this at
 * each hop; a closed loop (the `singles` scenario) never does. Bounded (rounds × gaps), loopback only.
 *
 *   npx tsx bench/idle-wakeup.ts [--rounds=200] [--gaps=0,2,10,50] [--mongodb-uri=URI]
 *
 * Without a URI it starts the embedded FerretDB in a temporary folder.
 */
import { fork } from 'node:child_process';
import * as net from 'node:net';
import { MongoClient } from 'mongodb';
import { scratchDatabase } from './lib/scratch-database';

const arg = (k: string) => process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** The median of `rounds` round trips, each after `gap` ms of idleness (0: back to back). */
async function probe(rounds: number, gap: number, roundTrip: () => Promise<void>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await roundTrip();
    ms.push(performance.now() - t0);
    if (gap) await sleep(gap);
  }
  return median(ms);
}

async function main() {
  const rounds = Math.min(Math.max(Number(arg('rounds') ?? 200) || 200, 10), 10_000);
  const gaps = (arg('gaps') ?? '0,2,10,50')
    .split(',')
    .map(Number)
    .filter((g) => Number.isFinite(g) && g >= 0 && g <= 1000);

  // a loopback echo served by another Node process
  const child = fork(__filename, ['echo-server'], { execArgv: process.execArgv, stdio: 'inherit' });
  const port = await new Promise<number>((r) => child.once('message', (m) => r(Number(m))));
  const sock = net.connect(port, '127.0.0.1').setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  const echo = () =>
    new Promise<void>((r) => {
      sock.once('data', () => r());
      sock.write('x');
    });

  const db0 = await scratchDatabase(arg('mongodb-uri'), 'idle');
  const client = await MongoClient.connect(db0.uri);
  try {
    const col = client.db().collection<{ _id: string; v: number }>('probe');
    await col.deleteMany({});
    await col.insertOne({ _id: 'a', v: 1 });
    const find = async () => void (await col.findOne({ _id: 'a' }));
    await probe(50, 0, echo);
    await probe(50, 0, find);
    for (const gap of gaps) {
      const e = await probe(rounds, gap, echo);
      const f = await probe(rounds, gap, find);
      console.log(`after ${gap} ms idle: TCP echo to another process p50 ${(e * 1000).toFixed(0)} µs; database findOne by _id p50 ${f.toFixed(3)} ms`);
    }
  } finally {
    sock.destroy();
    child.kill();
    await client.close();
    await db0.stop();
  }
}

if (process.argv[2] === 'echo-server') {
  // the other end of the parent's round trips (its own process, like a client or the database)
  const echoServer = net.createServer((c) =>
    c
      .setNoDelay(true)
      .on('data', (d) => c.write(d))
      .on('error', () => undefined),
  );
  echoServer.listen(0, '127.0.0.1', () => process.send?.((echoServer.address() as net.AddressInfo).port));
  process.on('disconnect', () => process.exit(0));
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
