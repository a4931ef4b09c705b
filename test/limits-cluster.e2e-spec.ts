import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { Socket } from 'socket.io-client';
import { freePort } from '../src/database/embedded-database';
import { hs256, TEST_SECRET } from './support/jwt';
import { testMongoUri } from './support/db';
import { connectClient, startTestApp, TestApp, waitFor } from './support/app';
import { haveRedisServer, REDIS_SERVER_BIN, TestRedis } from './support/redis';

/**
 * Issue 13: with REDIS_URL the per-user connection limit holds over every node, and a node that dies
 * with sockets counted gives them back within LIMITS_NODE_LEASE_MS. Node A runs in this process,
 * node B is a separate server process so that it can be SIGKILLed.
 */
if (!haveRedisServer()) {
  // eslint-disable-next-line no-console
  console.warn(`limits across nodes e2e SKIPPED: ${REDIS_SERVER_BIN} not found (bash scripts/setup.sh --test)`);
}
const describeIfRedis = haveRedisServer() ? describe : describe.skip;
const root = path.join(__dirname, '..');

describeIfRedis('connection limits across nodes (REDIS_URL)', () => {
  const redis = new TestRedis();
  let a: TestApp;
  let b: ChildProcess | undefined;
  let bUrl: string;
  const log: string[] = [];
  const sockets: Socket[] = [];
  let token: string;

  const connect = async (url: string) => {
    const s = await connectClient(url, { auth: { token } });
    sockets.push(s);
    return s;
  };
  const refusal = async (url: string) => {
    try {
      sockets.push(await connectClient(url, { auth: { token } }));
    } catch (e) {
      return (e as Error).message;
    }
    return 'accepted';
  };

  beforeAll(async () => {
    await redis.start();
    const env = {
      AUTH_JWT_SECRET: TEST_SECRET,
      REDIS_URL: redis.url,
      MAX_CONNECTIONS_PER_USER: '3',
      LIMITS_NODE_LEASE_MS: '2000',
      MONGODB_URI: testMongoUri('limits_cluster'),
    };
    const port = await freePort();
    bUrl = `http://127.0.0.1:${port}`;
    b = spawn(process.execPath, ['-r', path.join(root, 'bench/lib/register.js'), path.join(root, 'src/main.ts')], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    b.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
    b.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    a = await startTestApp(env);
    token = await hs256({ sub: 'alice' }, { expiresIn: '1h' });
    await waitFor(async () => (await fetch(`${bUrl}/ready`).catch(() => null))?.status === 200, 90_000, `node B ready (${log.join('').slice(-500)})`);
  }, 120_000);

  afterAll(async () => {
    for (const s of sockets) s.close();
    b?.kill('SIGKILL');
    await a?.close();
    await redis.stop();
  });

  it('a user allowed 3 connections gets 3 in total over two nodes, and a killed node frees its slots within the lease', async () => {
    await connect(a.url);
    await connect(bUrl);
    await connect(bUrl);
    expect(await refusal(a.url)).toBe('too many connections for this user (at most 3)');
    expect(await refusal(bUrl)).toBe('too many connections for this user (at most 3)');
    // other users are not affected
    const bob = await connectClient(a.url, { auth: { token: await hs256({ sub: 'bob' }, { expiresIn: '1h' }) } });
    sockets.push(bob);

    // a socket closed on A gives its slot back at once
    sockets[0].close();
    await waitFor(async () => (await refusal(a.url)) === 'accepted', 10_000, 'the slot freed on A to be usable');

    // B dies with two of alice's sockets counted: after its lease (2 s) they no longer count
    const died = Date.now();
    b!.kill('SIGKILL');
    await waitFor(async () => (await refusal(a.url)) === 'accepted', 15_000, "the dead node's slots to expire");
    const freedAfter = Date.now() - died;
    await waitFor(async () => (await refusal(a.url)) === 'accepted', 15_000, 'the second dead slot');
    expect(await refusal(a.url)).toBe('too many connections for this user (at most 3)');
    // eslint-disable-next-line no-console
    console.log(`limits across nodes: the killed node's slots were free after ${freedAfter} ms (lease 2000 ms)`);
  }, 120_000);
});
