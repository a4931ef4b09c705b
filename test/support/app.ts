import { INestApplication } from '@nestjs/common';
import { io, Socket } from 'socket.io-client';
import type { AppExtension } from '../../src/app.extensions';
import { createApp } from '../../src/bootstrap';
import { loadConfig } from '../../src/config/config.loader';
import { AppConfig } from '../../src/config/config.schema';
import { testMongoUri } from './db';

export interface TestApp {
  app: INestApplication;
  url: string;
  port: number;
  config: AppConfig;
  mongoUri: string;
  close(): Promise<void>;
}

/**
 * Boots the real application on a free port against a fresh database of the test server.
 * `env` overrides variables (as strings, exactly like the environment would); `extensions` are the
 * user modules createApp plugs in (docs/EXTENDING.md).
 */
export async function startTestApp(env: Record<string, string | undefined> = {}, name = 'app', extensions?: AppExtension[]): Promise<TestApp> {
  // MONGODB_URI: '' means "no external database": the app starts its own embedded FerretDB
  const mongoUri = 'MONGODB_URI' in env ? (env.MONGODB_URI ?? '') : testMongoUri(name);
  const config = loadConfig(
    {
      NODE_ENV: 'test',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      PORT: '0',
      HOST: '127.0.0.1',
      MONGODB_URI: mongoUri,
      ...env,
    },
    '/nonexistent-config-dir',
  );
  const app = await createApp({ config, bufferLogs: false, extensions });
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer();
  const port = (server.address() as { port: number }).port;
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    port,
    config,
    mongoUri,
    close: async () => {
      await app.close();
    },
  };
}

export interface ClientOptions {
  auth?: Record<string, unknown>;
  query?: Record<string, string>;
  extraHeaders?: Record<string, string>;
  transports?: ('websocket' | 'polling')[];
}

/** A connected socket.io client (rejects if the handshake is refused). */
export function connectClient(url: string, opts: ClientOptions = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      path: '/socket.io',
      transports: opts.transports ?? ['websocket'],
      auth: opts.auth,
      query: opts.query,
      extraHeaders: opts.extraHeaders,
      reconnection: false,
      forceNew: true,
      timeout: 10_000,
    });
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

/** Emits with an ack and resolves with the answer. */
export function emitAck<T = any>(socket: Socket, event: string, payload?: unknown, timeoutMs = 20_000): Promise<T> {
  return socket.timeout(timeoutMs).emitWithAck(event, payload) as Promise<T>;
}

/** Connects and joins as `userId` (dev mode) or with `token`. */
export async function joinedClient(url: string, userId: string, token?: string): Promise<Socket> {
  const socket = await connectClient(url);
  const ack = await emitAck(socket, 'sync:join', token ? { token } : { userId });
  if (!ack?.success) {
    socket.close();
    throw new Error(`join failed: ${JSON.stringify(ack)}`);
  }
  return socket;
}

/** Resolves with the next `count` items of a server event (arrays are flattened). */
export function collectEvents<T = any>(socket: Socket, event: string, count: number, timeoutMs = 10_000): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const got: T[] = [];
    const onEvent = (payload: T | T[]) => {
      if (Array.isArray(payload)) got.push(...payload);
      else got.push(payload);
      if (got.length >= count) {
        clearTimeout(timer);
        socket.off(event, onEvent);
        resolve(got);
      }
    };
    const timer = setTimeout(() => {
      socket.off(event, onEvent);
      reject(new Error(`timed out waiting for ${count} '${event}' (got ${got.length})`));
    }, timeoutMs);
    socket.on(event, onEvent);
  });
}

/** Records every payload of an event, for asserting later that something did NOT arrive. */
export function recordEvents<T = any>(socket: Socket, event: string): T[] {
  const got: T[] = [];
  socket.on(event, (payload: T | T[]) => {
    if (Array.isArray(payload)) got.push(...payload);
    else got.push(payload);
  });
  return got;
}

/** Waits until `predicate` holds, polling (for asynchronous effects such as a restarted process). */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
