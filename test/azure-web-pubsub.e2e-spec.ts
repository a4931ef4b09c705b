/* Azure Web PubSub for Socket.IO (issue 13), tested offline: the service cannot be reached from here.
 * What is verified: the negotiate answer (endpoint, path, token) for the authenticated caller only, its
 * token's claims (audience, subject, expiry) and signature with the connection string's AccessKey;
 * config validation; that boot wires the extension when configured (and not otherwise). The extension
 * opens a tunnel (an outgoing WebSocket) from the node to the service at boot: here the connection
 * string's Endpoint is a stand-in on 127.0.0.1 that records the tunnel's handshake and refuses it, so
 * no connection leaves the machine. Not verified: clients connecting through the real service. */
import * as http from 'node:http';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { jwtVerify } from 'jose';
import request from 'supertest';
import { ConfigError, loadConfig } from '../src/config/config.loader';
import { SyncGateway } from '../src/gateway/sync.gateway';
import { hs256, TEST_SECRET } from './support/jwt';
import { startTestApp, TestApp, waitFor } from './support/app';

const HOST = 'sync-test.webpubsub.invalid'; // .invalid never resolves (RFC 6761): nothing can leave
const ACCESS_KEY = randomBytes(32).toString('base64');
const CONNECTION_STRING = `Endpoint=https://${HOST};AccessKey=${ACCESS_KEY};Version=1.0;`;
const HUB = 'syncHub';

/**
 * A stand-in for the service on 127.0.0.1: records the tunnel's WebSocket handshake and refuses it.
 * (The extension's client then keeps retrying in the background for up to about 40 s, even after the
 * app closed: vendor behaviour; the attempts go to this closed loopback port.)
 */
async function fakeService(): Promise<{ port: number; upgrades: { url: string; authorization?: string }[]; close(): Promise<void> }> {
  const upgrades: { url: string; authorization?: string }[] = [];
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket) => {
    upgrades.push({ url: req.url ?? '', authorization: req.headers.authorization });
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    upgrades,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Every TCP connection the process opens (host or path), recorded while a test runs. */
function recordConnections(): { targets: string[]; stacks: string[]; restore(): void } {
  const targets: string[] = [];
  const stacks: string[] = [];
  const original = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: any[]) {
    // (options, cb), (port, host, cb), (path, cb), or Node's internal normalized [options, cb]
    const first = Array.isArray(args[0]) ? args[0][0] : args[0];
    const target = typeof first === 'object' && first !== null ? (first.host ?? first.path ?? '') : typeof args[1] === 'string' ? args[1] : first;
    targets.push(String(target ?? ''));
    if (String(target).includes('webpubsub')) stacks.push(new Error('connect').stack ?? '');
    return (original as any).apply(this, args);
  } as typeof original;
  return { targets, stacks, restore: () => (net.Socket.prototype.connect = original) };
}

describe('Azure Web PubSub: config validation', () => {
  const base = { NODE_ENV: 'test', AUTH_MODE: 'dev' };
  it('accepts a connection string with Endpoint and AccessKey', () => {
    expect(loadConfig({ ...base, WEB_PUBSUB_CONNECTION_STRING: CONNECTION_STRING, WEB_PUBSUB_HUB_NAME: HUB }, '/nonexistent').scale).toMatchObject({
      webPubSubConnectionString: CONNECTION_STRING,
      webPubSubHub: HUB,
    });
  });
  it.each([
    ['garbage', /Key=Value/],
    [`Endpoint=https://${HOST};Version=1.0;`, /AccessKey is missing/],
    [`AccessKey=${ACCESS_KEY};Version=1.0;`, /Endpoint=.* is missing/],
    [`Endpoint=ftp://${HOST};AccessKey=k;`, /http\(s\) URL/],
    [`Endpoint=https://${HOST};AccessKey=k;Port=abc;`, /Port must be a number/],
  ])('refuses %s', (value, message) => {
    expect(() => loadConfig({ ...base, WEB_PUBSUB_CONNECTION_STRING: value }, '/nonexistent')).toThrow(message);
  });
  it('refuses a bad hub name, and a plain-http endpoint in production; never prints the key', () => {
    expect(() => loadConfig({ ...base, WEB_PUBSUB_CONNECTION_STRING: CONNECTION_STRING, WEB_PUBSUB_HUB_NAME: 'a hub!' }, '/nonexistent')).toThrow(ConfigError);
    let err: Error | undefined;
    try {
      loadConfig(
        { NODE_ENV: 'production', AUTH_JWT_SECRET: TEST_SECRET, WEB_PUBSUB_CONNECTION_STRING: `Endpoint=http://${HOST};AccessKey=${ACCESS_KEY};` },
        '/nonexistent',
      );
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(/must be https:\/\/ in production/);
    expect(err?.message).not.toContain(ACCESS_KEY);
  });
});

describe('Azure Web PubSub: configured (offline, the service stood in for on 127.0.0.1)', () => {
  let t: TestApp;
  let connections: ReturnType<typeof recordConnections>;
  let service: Awaited<ReturnType<typeof fakeService>>;
  let endpoint: string;
  let connectionString: string;
  beforeAll(async () => {
    service = await fakeService();
    endpoint = `http://127.0.0.1:${service.port}`;
    connectionString = `Endpoint=${endpoint};AccessKey=${ACCESS_KEY};Version=1.0;`;
    connections = recordConnections();
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET, WEB_PUBSUB_CONNECTION_STRING: connectionString, WEB_PUBSUB_HUB_NAME: HUB }, 'azure');
  });
  afterAll(async () => {
    connections?.restore();
    await t?.close();
    await service?.close();
  });

  it('negotiate needs an authenticated caller', async () => {
    await request(t.url).get('/api/negotiate').expect(401);
    await request(t.url).get('/api/negotiate').set('Authorization', 'Bearer not-a-jwt').expect(401);
    await request(t.url).get('/api/negotiate?userId=alice').expect(401);
  });

  it("answers endpoint, path and a token for the caller, signed with the connection string's key, for the hub, expiring in an hour", async () => {
    const token = await hs256({ sub: 'alice' }, { expiresIn: '1h' });
    const before = Math.floor(Date.now() / 1000);
    // a userId in the query is ignored: the token is always the caller's
    const res = await request(t.url).get('/api/negotiate?userId=bob').set('Authorization', `Bearer ${token}`).expect(200);
    const wsEndpoint = endpoint.replace(/^http/, 'ws');
    expect(res.body).toEqual({
      endpoint: wsEndpoint,
      path: `/clients/socketio/hubs/${HUB}`,
      token: expect.any(String),
      url: `${wsEndpoint}/clients/socketio/hubs/${HUB}?access_token=${res.body.token}`,
      expiresAt: expect.any(Number),
    });
    const { payload, protectedHeader } = await jwtVerify(res.body.token, new TextEncoder().encode(ACCESS_KEY), {
      audience: `${endpoint}/clients/socketio/hubs/${HUB}`,
      algorithms: ['HS256'],
    });
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload.sub).toBe('alice');
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(payload.iat!).toBeGreaterThanOrEqual(before - 1);
    expect(res.body.expiresAt).toBe(payload.exp! * 1000);
    // another key (another service, or a forged token) does not verify
    await expect(jwtVerify(res.body.token, new TextEncoder().encode(randomBytes(32).toString('base64')))).rejects.toThrow();
    // nor does the token for another hub
    await expect(jwtVerify(res.body.token, new TextEncoder().encode(ACCESS_KEY), { audience: `${endpoint}/clients/socketio/hubs/other` })).rejects.toThrow();
  });

  it('boot handed the Socket.IO server to the extension: its engine and adapter; direct Socket.IO requests to the node are refused', async () => {
    const server = t.app.get(SyncGateway).server;
    expect(server.engine.constructor.name).toBe('WebPubSubEioServer');
    expect(server.of('/').adapter.constructor.name).toBe('WebPubSubAdapterInternal');
    expect((server as any).webPubSubOptions).toEqual({ connectionString, hub: HUB });
    // clients connect through the service only
    await request(t.url).get('/socket.io/?EIO=4&transport=polling').expect(403);
    // the rest of the API is unaffected
    await request(t.url).get('/health').expect(200);
  });

  it("opened the tunnel to the connection string's endpoint, for the hub, signed with its key; nothing else left the machine", async () => {
    await waitFor(() => service.upgrades.length > 0, 15_000, 'the tunnel handshake');
    const [up] = service.upgrades;
    // eslint-disable-next-line no-console
    console.log(`Azure Web PubSub tunnel handshake (to the stand-in): ${up.url.replace(/access_token=[^&]+/, 'access_token=…')}`);
    const url = new URL(up.url, endpoint);
    expect(url.searchParams.get('hub')?.toLowerCase()).toBe(HUB.toLowerCase());
    const token = up.authorization?.replace(/^Bearer /, '') ?? url.searchParams.get('access_token') ?? '';
    const { payload } = await jwtVerify(token, new TextEncoder().encode(ACCESS_KEY), { algorithms: ['HS256'] });
    expect(String(payload.aud)).toContain(`127.0.0.1:${service.port}`);
    expect(connections.targets.length).toBeGreaterThan(1); // the recorder works: the database connections are in it
    expect(connections.stacks).toEqual([]); // nothing towards a *.webpubsub host
    expect(connections.targets.filter((h) => h && !['127.0.0.1', 'localhost', '::1'].includes(h))).toEqual([]);
  });
});

describe('Azure Web PubSub: not configured', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET }, 'azure_off');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('serves Socket.IO itself, and negotiate answers 501', async () => {
    const server = t.app.get(SyncGateway).server;
    expect(server.engine.constructor.name).not.toBe('WebPubSubEioServer');
    expect((server as any).webPubSubOptions).toBeUndefined();
    const res = await request(t.url).get('/socket.io/?EIO=4&transport=polling').expect(200);
    expect(res.text).toMatch(/"sid"/);
    const token = await hs256({ sub: 'alice' }, { expiresIn: '1h' });
    await request(t.url).get('/api/negotiate').set('Authorization', `Bearer ${token}`).expect(501);
  });
});
