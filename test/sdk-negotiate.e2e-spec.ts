/* The SDK's negotiateUrl against the real server (embedded database, JWT auth). Without
 * WEB_PUBSUB_CONNECTION_STRING the server's own GET /api/negotiate answers 501 and the SDK connects
 * to the server directly; with a negotiate endpoint that answers as Azure Web PubSub's would (a
 * stand-in on 127.0.0.1 pointing at this server's own URL and /socket.io path: the service itself
 * cannot be reached from here) the SDK connects where the answer says, the app's JWT in auth.token,
 * and syncs for real. The answer the server gives in Azure mode (its negotiator, signing locally) is
 * checked to be what the SDK takes. Nothing leaves 127.0.0.1. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MemoryStorage, SyncClient, type SyncClientError, type SyncClientOptions } from '@sync/client';
import { randomBytes } from 'node:crypto';
import { parseNegotiateAnswer } from '../libs/client/src/negotiate';
import { AzureWebPubSubNegotiator } from '../src/integrations/azure/azure-web-pubsub';
import { SyncGateway } from '../src/sync/sync.gateway';
import { startTestApp, TestApp, waitFor } from './support/app';
import { hs256, TEST_SECRET } from './support/jwt';

const clients: SyncClient[] = [];
function makeClient(t: TestApp, userId: string, opts: SyncClientOptions): SyncClient {
  const c = new SyncClient(t.url, userId, new MemoryStorage(), {
    logger: null,
    transports: ['websocket'],
    connectTimeoutMs: 20_000,
    reconnectDelayMs: 50,
    maxRetryDelayMs: 500,
    ...opts,
  });
  clients.push(c);
  return c;
}

describe('SDK negotiateUrl against the real server', () => {
  let t: TestApp;
  let stub: Server;
  let stubUrl: string;
  const stubRequests: { url: string; authorization?: string }[] = [];

  beforeAll(async () => {
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET }, 'sdk_negotiate');
    // what Azure's negotiate would answer, but pointing at this server (its own URL and path)
    stub = createServer((req: IncomingMessage, res) => {
      stubRequests.push({ url: req.url ?? '', authorization: req.headers.authorization });
      if (!req.headers.authorization?.startsWith('Bearer ')) return void res.writeHead(401).end();
      const endpoint = t.url.replace('http://', 'ws://');
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({
          url: `${endpoint}/socket.io?access_token=stub`,
          endpoint,
          path: '/socket.io',
          token: 'stub-access-token',
          expiresAt: Date.now() + 3_600_000,
        }),
      );
    });
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
    stubUrl = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  });
  afterAll(async () => {
    stub?.closeAllConnections();
    await new Promise<void>((r) => (stub ? stub.close(() => r()) : r()));
    await t?.close();
  });

  it("the server's /api/negotiate answers 501 (no WEB_PUBSUB_CONNECTION_STRING): the SDK connects directly and syncs", async () => {
    const aliceToken = await hs256({ sub: 'alice' }, { expiresIn: '1h' });
    const bobToken = await hs256({ sub: 'bob' }, { expiresIn: '1h' });
    expect((await fetch(`${t.url}/api/negotiate`, { headers: { Authorization: `Bearer ${aliceToken}` } })).status).toBe(501);

    const alice = makeClient(t, 'alice', { token: aliceToken, negotiateUrl: '/api/negotiate' });
    const bob = makeClient(t, 'bob', { token: bobToken });
    const errors: Error[] = [];
    alice.on('error', (e) => errors.push(e));
    await alice.subscribe('tasks');
    await bob.subscribe('tasks');
    await Promise.all([alice.connect(), bob.connect()]);
    expect(alice.inspect().connection).toEqual({ via: 'direct', endpoint: t.url, path: '/socket.io', expiresAt: null });

    await alice.makeChange('insert', 'tasks', 'neg-1', { title: 'via fallback' });
    await waitFor(() => bob.getDocument('tasks', 'neg-1')?.title === 'via fallback', 15_000, 'alice -> bob');
    await bob.makeChange('update', 'tasks', 'neg-1', { title: 'edited by bob' });
    await waitFor(() => alice.getDocument('tasks', 'neg-1')?.title === 'edited by bob', 15_000, 'bob -> alice');
    await alice.whenSynced();
    expect(alice.getPendingChangesCount()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('a negotiate answer pointing at the server: the SDK connects there with the access token and the JWT, and syncs', async () => {
    const carolToken = await hs256({ sub: 'carol' }, { expiresIn: '1h' });
    const daveToken = await hs256({ sub: 'dave' }, { expiresIn: '1h' });
    // serverUrl is unreachable on purpose: only the negotiate answer leads to the server
    const carol = new SyncClient('http://127.0.0.1:1', 'carol', new MemoryStorage(), {
      logger: null,
      transports: ['websocket'],
      connectTimeoutMs: 20_000,
      reconnectDelayMs: 50,
      maxRetryDelayMs: 500,
      token: carolToken,
      negotiateUrl: `${stubUrl}/api/negotiate`,
    });
    clients.push(carol);
    const dave = makeClient(t, 'dave', { token: daveToken });
    await carol.subscribe('tasks');
    await dave.subscribe('tasks');
    await Promise.all([carol.connect(), dave.connect()]);
    expect(stubRequests.at(-1)).toEqual({ url: '/api/negotiate', authorization: `Bearer ${carolToken}` });
    expect(carol.inspect().connection).toMatchObject({ via: 'negotiated', endpoint: t.url.replace('http://', 'ws://'), path: '/socket.io' });

    await carol.makeChange('insert', 'tasks', 'neg-2', { title: 'through the negotiated endpoint' });
    await waitFor(() => dave.getDocument('tasks', 'neg-2')?.title === 'through the negotiated endpoint', 15_000, 'carol -> dave');
    await dave.makeChange('update', 'tasks', 'neg-2', { done: true });
    await waitFor(() => carol.getDocument('tasks', 'neg-2')?.done === true, 15_000, 'dave -> carol');

    // the server drops the connection: the client comes back (same negotiated answer: an hour left) and catches up
    const asked = stubRequests.length;
    const online: boolean[] = [];
    carol.on('online', (o) => online.push(o));
    t.app.get(SyncGateway).server.disconnectSockets(true);
    await waitFor(() => online.join() === 'false,true', 20_000, 'carol back online');
    await dave.makeChange('insert', 'tasks', 'neg-3', { title: 'while carol reconnected' });
    await waitFor(() => !!carol.getDocument('tasks', 'neg-3'), 15_000, 'catch-up after the reconnect');
    expect(stubRequests.length).toBe(asked);
  });

  it('a refused JWT at negotiate is an UNAUTHENTICATED error event and a retry, not a crash', async () => {
    const errors: SyncClientError[] = [];
    const erin = makeClient(t, 'erin', { negotiateUrl: `${stubUrl}/api/negotiate` }); // no token: the stub answers 401
    erin.on('error', (e) => errors.push(e as SyncClientError));
    void erin.connect().catch(() => undefined);
    await waitFor(() => errors.length >= 2, 15_000, 'two refused negotiates');
    expect(errors.every((e) => e.code === 'UNAUTHENTICATED')).toBe(true);
    expect(erin.isOnline()).toBe(false);
  });
});

describe("the server's Azure-mode negotiate answer", () => {
  it('is what the SDK takes: a wss: origin, the hub path, the access token, expiresAt (signed locally, no network)', async () => {
    const negotiator = new AzureWebPubSubNegotiator({
      connectionString: `Endpoint=https://sync-test.webpubsub.invalid;AccessKey=${randomBytes(32).toString('base64')};Version=1.0;`,
      hub: 'syncHub',
    });
    const answer = await negotiator.negotiate('alice');
    expect(parseNegotiateAnswer(JSON.stringify(answer), 'https://app.example/api/negotiate')).toEqual({
      via: 'negotiated',
      endpoint: 'wss://sync-test.webpubsub.invalid',
      path: '/clients/socketio/hubs/syncHub',
      accessToken: answer.token,
      expiresAt: answer.expiresAt,
    });
  });
});
