import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseNegotiateAnswer } from './negotiate';
import { MemoryStorage } from './storage/memory-storage';
import { SyncClient, SyncClientError, type SyncClientOptions } from './sync-client';
import { FakeSyncServer } from './testing/fake-sync-server';

/* Starting from a negotiate URL (Azure Web PubSub for Socket.IO): a local HTTP server answers
 * negotiate as the service's negotiate endpoint would, pointing at a real Socket.IO server (the
 * protocol fake, on the service's path and checking the access token as the service would). */

const HUB_PATH = '/clients/socketio/hubs/tasks';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

class NegotiateServer {
  url = '';
  readonly requests: { url: string; headers: IncomingMessage['headers'] }[] = [];
  /** Answers request number i (0-based); the last entry answers every later one. */
  handlers: Handler[] = [];
  private http!: Server;

  async start(): Promise<void> {
    this.http = createServer((req, res) => {
      const i = this.requests.length;
      this.requests.push({ url: req.url ?? '', headers: req.headers });
      const h = this.handlers[Math.min(i, this.handlers.length - 1)];
      if (!h) return void res.writeHead(500).end();
      h(req, res);
    });
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
  }
}

const json =
  (body: unknown, status = 200): Handler =>
  (_req, res) =>
    void res.writeHead(status, { 'Content-Type': 'application/json' }).end(typeof body === 'string' ? body : JSON.stringify(body));

let sync: FakeSyncServer;
let neg: NegotiateServer;
const clients: SyncClient[] = [];

beforeEach(async () => {
  sync = new FakeSyncServer();
  await sync.start(0, { path: HUB_PATH });
  neg = new NegotiateServer();
  await neg.start();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await sync.stop();
  await neg.stop();
});

/** What the service's negotiate would answer: the Socket.IO endpoint, path and an access token. */
function azureAnswer(token: string, expiresInMs = 3_600_000) {
  const endpoint = sync.url.replace('http://', 'ws://');
  return { url: `${endpoint}${HUB_PATH}?access_token=${token}`, endpoint, path: HUB_PATH, token, expiresAt: Date.now() + expiresInMs };
}

/** A client whose "server" is nothing (port 1): it can only reach the sync server through negotiate. */
function client(opts: SyncClientOptions = {}, serverUrl = 'http://127.0.0.1:1'): SyncClient {
  const c = new SyncClient(serverUrl, 'alice', new MemoryStorage(), {
    logger: null,
    transports: ['websocket'],
    connectTimeoutMs: 10_000,
    reconnectDelayMs: 20,
    maxRetryDelayMs: 200,
    negotiateUrl: `${neg.url}/api/negotiate`,
    token: 'app-jwt',
    ...opts,
  });
  clients.push(c);
  return c;
}

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('SyncClient with negotiateUrl', () => {
  it('negotiates with the app token, connects to endpoint + path with query.access_token, the JWT in auth.token, and syncs', async () => {
    sync.accessTokens = new Set(['svc-token-1']);
    neg.handlers = [json(azureAnswer('svc-token-1'))];
    const c = client();
    await c.subscribe('tasks');
    await c.connect();
    await c.makeChange('insert', 'tasks', 't-1', { title: 'through the service' });
    await c.whenSynced();
    expect(sync.get('tasks', 't-1')).toMatchObject({ title: 'through the service' });
    expect(neg.requests).toHaveLength(1);
    expect(neg.requests[0].url).toBe('/api/negotiate');
    expect(neg.requests[0].headers.authorization).toBe('Bearer app-jwt');
    expect(sync.handshakes.at(-1)).toMatchObject({ query: { access_token: 'svc-token-1' }, auth: { token: 'app-jwt' } });
    expect(c.inspect().connection).toMatchObject({ via: 'negotiated', endpoint: sync.url.replace('http://', 'ws://'), path: HUB_PATH });
    expect(JSON.stringify(c.inspect())).not.toContain('svc-token-1');

    // a change from elsewhere arrives live through the same connection
    sync.applyExternal({
      changeId: '00000000-0000-4000-8000-000000000001',
      operation: 'insert',
      collection: 'tasks',
      documentId: 't-2',
      data: { title: 'live', sync_updated_at: Date.now() },
      timestamp: Date.now(),
    } as never);
    await until(() => !!c.getDocument('tasks', 't-2'), 'the live change');
  });

  it('a negotiate URL relative to the server URL; no token: X-User-Id (development mode)', async () => {
    neg.handlers = [json(azureAnswer('t'))];
    const c = client({ negotiateUrl: '/api/negotiate', token: undefined }, neg.url);
    await c.connect();
    expect(neg.requests[0].url).toBe('/api/negotiate');
    expect(neg.requests[0].headers.authorization).toBeUndefined();
    expect(neg.requests[0].headers['x-user-id']).toBe('alice');
  });

  it('negotiates again when the connection is refused (an expired access token)', async () => {
    sync.accessTokens = new Set(['fresh']);
    neg.handlers = [json(azureAnswer('expired')), json(azureAnswer('fresh'))];
    const c = client();
    await c.connect();
    expect(neg.requests).toHaveLength(2);
    expect(sync.handshakes.map((h) => h.query.access_token)).toEqual(['expired', 'fresh']);
    expect(c.isOnline()).toBe(true);
  });

  it('reuses an answer far from expiry on a reconnect', async () => {
    neg.handlers = [json(azureAnswer('long'))];
    const c = client();
    await c.connect();
    sync.dropAll();
    await until(() => sync.handshakes.length === 2 && c.isOnline(), 'the reconnect');
    expect(neg.requests).toHaveLength(1); // an hour left: the same token
    expect(sync.handshakes.map((h) => h.query.access_token)).toEqual(['long', 'long']);
  });

  it('negotiates again before reconnecting when expiresAt is less than a minute away', async () => {
    neg.handlers = [json(azureAnswer('short', 30_000)), json(azureAnswer('renewed'))];
    const c = client();
    await c.connect();
    sync.dropAll();
    await until(() => sync.handshakes.length === 2 && c.isOnline(), 'the reconnect');
    expect(neg.requests).toHaveLength(2);
    expect(sync.handshakes.map((h) => h.query.access_token)).toEqual(['short', 'renewed']);
  });

  it('a 501 (server not in Azure mode) connects to the server directly', async () => {
    const direct = new FakeSyncServer();
    await direct.start();
    try {
      neg.handlers = [json({ statusCode: 501, message: 'not configured' }, 501)];
      const c = client({}, direct.url);
      await c.subscribe('tasks');
      await c.connect();
      await c.makeChange('insert', 'tasks', 'd-1', { n: 1 });
      await c.whenSynced();
      expect(direct.get('tasks', 'd-1')).toMatchObject({ n: 1 });
      expect(direct.handshakes.at(-1)!.query.access_token).toBeUndefined();
      expect(direct.handshakes.at(-1)!.auth).toEqual({ token: 'app-jwt' });
      expect(c.inspect().connection).toEqual({ via: 'direct', endpoint: direct.url, path: '/socket.io', expiresAt: null });
      // a reconnect asks again (the server may have been switched to Azure mode meanwhile)
      const asked = neg.requests.length;
      direct.dropAll();
      await until(() => neg.requests.length > asked && c.isOnline(), 'the reconnect');
    } finally {
      await clients.pop()?.close();
      await direct.stop();
    }
  });

  const big = 'x'.repeat(1024 * 1024);
  const hostile: [string, Handler, RegExp][] = [
    ['not JSON', json('<html>gateway</html>'), /not JSON/],
    ['a JSON array', json([1, 2]), /not a JSON object/],
    ['JSON null', json('null'), /not a JSON object/],
    ['no endpoint', json({ path: HUB_PATH, token: 't', expiresAt: Date.now() + 3_600_000 }), /endpoint/],
    ['endpoint not a string', json({ endpoint: 42, path: HUB_PATH, token: 't', expiresAt: Date.now() + 3_600_000 }), /endpoint/],
    ['endpoint not a URL', json({ endpoint: 'not a url', path: HUB_PATH, token: 't', expiresAt: 1 }), /endpoint/],
    ['an ftp: endpoint', json({ endpoint: 'ftp://127.0.0.1:21', path: HUB_PATH, token: 't', expiresAt: 1 }), /wss:, ws:, https: or http:/],
    ['a javascript: endpoint', json({ endpoint: 'javascript:alert(1)', path: HUB_PATH, token: 't', expiresAt: 1 }), /wss:, ws:, https: or http:/],
    ['an endpoint with a path', json({ endpoint: 'ws://127.0.0.1:9/evil-namespace', path: HUB_PATH, token: 't', expiresAt: 1 }), /origin only/],
    ['an endpoint with credentials', json({ endpoint: 'ws://u:p@127.0.0.1:9', path: HUB_PATH, token: 't', expiresAt: 1 }), /origin only/],
    ['no path', json({ endpoint: 'ws://127.0.0.1:9', token: 't', expiresAt: 1 }), /path/],
    ['a path without a slash', json({ endpoint: 'ws://127.0.0.1:9', path: 'hubs', token: 't', expiresAt: 1 }), /path/],
    ['a path with a query', json({ endpoint: 'ws://127.0.0.1:9', path: '/p?x=1', token: 't', expiresAt: 1 }), /path/],
    ['no token', json({ endpoint: 'ws://127.0.0.1:9', path: HUB_PATH, expiresAt: 1 }), /token/],
    ['a token with spaces', json({ endpoint: 'ws://127.0.0.1:9', path: HUB_PATH, token: 'a b', expiresAt: 1 }), /token/],
    ['a huge token', json({ endpoint: 'ws://127.0.0.1:9', path: HUB_PATH, token: 'x'.repeat(20_000), expiresAt: 1 }), /token/],
    ['no expiresAt', json({ endpoint: 'ws://127.0.0.1:9', path: HUB_PATH, token: 't' }), /expiresAt/],
    ['expiresAt not a number', json({ endpoint: 'ws://127.0.0.1:9', path: HUB_PATH, token: 't', expiresAt: 'soon' }), /expiresAt/],
    [
      'a huge body with a length',
      (_req, res) => {
        const body = JSON.stringify({ endpoint: 'ws://127.0.0.1:9', path: HUB_PATH, token: 't', expiresAt: 1, pad: big });
        res.on('error', () => undefined);
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) }).end(body);
      },
      /too large/,
    ],
    [
      'a huge chunked body',
      (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const chunk = 'x'.repeat(16 * 1024);
        let sent = 0;
        const more = () => {
          while (sent < 200 && !res.destroyed) {
            sent++;
            if (!res.write(chunk)) return void res.once('drain', more);
          }
          res.end();
        };
        res.on('error', () => undefined);
        more();
      },
      /too large/,
    ],
    ['HTTP 500', json({ message: 'boom' }, 500), /HTTP 500/],
    ['HTTP 404', json({ message: 'no' }, 404), /HTTP 404/],
    ['a redirect', (_req, res) => void res.writeHead(302, { Location: 'http://127.0.0.1:1/elsewhere' }).end(), /negotiate/],
    ['no answer in time', () => undefined, /no answer within/],
    ['a body that never ends', (_req, res) => void res.writeHead(200, { 'Content-Type': 'application/json' }).write('{"endpoint":'), /not read within/],
  ];

  it.each(hostile)('%s: a NEGOTIATE_FAILED error event, a retry after the backoff, then it connects once the answer is right', async (_name, bad, why) => {
    neg.handlers = [bad, json(azureAnswer('good'))];
    // the time bound matters only for the two cases that never answer (a good answer is quick even under load)
    const c = client({ negotiateTimeoutMs: 1_500 });
    const errors: SyncClientError[] = [];
    c.on('error', (e) => errors.push(e as SyncClientError));
    await c.connect();
    expect(c.isOnline()).toBe(true);
    expect(neg.requests.length).toBeGreaterThanOrEqual(2);
    expect(errors[0]).toBeInstanceOf(SyncClientError);
    expect(errors[0].code).toBe('NEGOTIATE_FAILED');
    expect(errors[0].message).toMatch(why);
    // nothing connected anywhere with the bad answer
    expect(sync.handshakes.map((h) => h.query.access_token)).toEqual(['good']);
    expect(c.inspect().lastError).toMatchObject({ code: 'NEGOTIATE_FAILED' });
  });

  it('a 401 is UNAUTHENTICATED: the token is asked for again (forceRefresh) before the retry', async () => {
    const asked: boolean[] = [];
    neg.handlers = [
      (req, res) =>
        void res
          .writeHead(req.headers.authorization === 'Bearer fresh-jwt' ? 200 : 401, { 'Content-Type': 'application/json' })
          .end(JSON.stringify(azureAnswer('good'))),
    ];
    const c = client({
      token: undefined,
      getToken: ({ forceRefresh }) => {
        asked.push(forceRefresh);
        return forceRefresh ? 'fresh-jwt' : 'stale-jwt';
      },
    });
    const errors: SyncClientError[] = [];
    c.on('error', (e) => errors.push(e as SyncClientError));
    await c.connect();
    expect(errors[0].code).toBe('UNAUTHENTICATED');
    expect(asked.slice(0, 2)).toEqual([false, true]);
    expect(neg.requests.map((r) => r.headers.authorization)).toEqual(['Bearer stale-jwt', 'Bearer fresh-jwt']);
    expect(sync.handshakes.at(-1)!.auth).toEqual({ token: 'fresh-jwt' });
  });

  it('nothing listening at the negotiate URL: errors and retries with a growing backoff, never a crash', async () => {
    await neg.stop();
    const c = client();
    const errors: SyncClientError[] = [];
    c.on('error', (e) => errors.push(e as SyncClientError));
    void c.connect().catch(() => undefined);
    await until(() => errors.length >= 3, 'three failed attempts');
    expect(errors.every((e) => e.code === 'NEGOTIATE_FAILED')).toBe(true);
    expect(c.inspect().reconnect.attempt).toBeGreaterThanOrEqual(3);
    await c.disconnect();
  });

  it('disconnect() during a negotiate stops it: nothing connects afterwards', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    neg.handlers = [(_req, res) => void held.then(() => json(azureAnswer('late'))(_req, res))];
    const c = client();
    void c.connect().catch(() => undefined);
    await until(() => neg.requests.length === 1, 'the negotiate request');
    await c.disconnect();
    release();
    await new Promise((r) => setTimeout(r, 300));
    expect(sync.handshakes).toHaveLength(0);
    expect(c.isOnline()).toBe(false);
  });
});

describe('parseNegotiateAnswer', () => {
  const ok = { endpoint: 'wss://x.webpubsub.azure.com', path: '/clients/socketio/hubs/h', token: 'a.b.c', expiresAt: 1 };
  it('takes an Azure answer', () => {
    expect(parseNegotiateAnswer(JSON.stringify(ok), 'https://app.example/api/negotiate')).toEqual({
      via: 'negotiated',
      endpoint: 'wss://x.webpubsub.azure.com',
      path: '/clients/socketio/hubs/h',
      accessToken: 'a.b.c',
      expiresAt: 1,
    });
  });
  it('refuses a downgrade: an https negotiate URL answering a ws: or http: endpoint', () => {
    for (const endpoint of ['ws://x.example', 'http://x.example']) {
      expect(() => parseNegotiateAnswer(JSON.stringify({ ...ok, endpoint }), 'https://app.example/api/negotiate')).toThrow(/unencrypted/);
      expect(parseNegotiateAnswer(JSON.stringify({ ...ok, endpoint }), 'http://127.0.0.1:3000/api/negotiate').endpoint).toBe(endpoint);
    }
  });
});
