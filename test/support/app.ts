import { INestApplication } from '@nestjs/common';
import type { ChangeAck, ClientToServerEvents, EventAck, EventRequest, ServerToClientEvents } from '@sync/protocol';
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

/** A test client: the protocol's event maps, seen from the client (listens to the server's, emits the client's). */
export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** The events a client emits, and what each one is sent and answers (from libs/protocol's event map). */
export type ClientEvent = keyof ClientToServerEvents;
/** Every event a client emits, checked against the event map both ways: one added or renamed there fails to compile here. */
const CLIENT_EVENT_SET = {
  'sync:join': true,
  'sync:subscribe': true,
  'sync:unsubscribe': true,
  'sync:update_subscriptions': true,
  'sync:change': true,
  'sync:changeBatch': true,
  'sync:get_changes': true,
  ping: true,
  mongoUpsert: true,
  mongoDelete: true,
} satisfies Record<ClientEvent, true>;
export const CLIENT_EVENTS = Object.keys(CLIENT_EVENT_SET) as ClientEvent[];
export type RequestOf<E extends ClientEvent> = EventRequest<E>;
type AckArgOf<E extends ClientEvent> = EventAck<E>;
type SuccessOf<A> = Extract<A, { success: true }>;
type FailureOf<A> = Exclude<A, { success: true }>;
/**
 * An event's answer as a test reads it: the success shape, with `success` a boolean and the failure
 * fields optional, so a test can assert `ack.success` / `ack.code` and then read the success fields
 * without narrowing; every field name still comes from the protocol, so a renamed one fails to compile.
 * Answers without a `success: true` variant (ping, the legacy events) are given as they are.
 */
export type AckOf<E extends ClientEvent> = [SuccessOf<AckArgOf<E>>] extends [never] ? AckArgOf<E> : Loose<AckArgOf<E>>;
type Loose<A> = Omit<Nested<SuccessOf<A>>, 'success'> & { success: boolean } & Partial<Omit<FailureOf<A>, keyof SuccessOf<A>>>;
/** A batch's per-change results are read the same way. */
type Nested<S> = { [K in keyof S]: S[K] extends ChangeAck[] ? Loose<ChangeAck>[] : S[K] };

/** The events the server emits, and the item a listener collects (arrays of changes are flattened). */
export type ServerEvent = keyof ServerToClientEvents;
type PayloadOf<E extends ServerEvent> = Parameters<ServerToClientEvents[E]>[0];
export type ItemOf<E extends ServerEvent> = PayloadOf<E> extends (infer I)[] ? I : PayloadOf<E>;

/** A connected socket.io client (rejects if the handshake is refused). */
export function connectClient(url: string, opts: ClientOptions = {}): Promise<ClientSocket> {
  return new Promise((resolve, reject) => {
    const socket: ClientSocket = io(url, {
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

/** Emits a protocol event with an ack and resolves with the answer (payload and answer typed by the event). */
export function emitAck<E extends ClientEvent>(socket: ClientSocket, event: E, payload: RequestOf<E>, timeoutMs = 20_000): Promise<AckOf<E>> {
  return emitUntyped(socket, event, payload, timeoutMs) as Promise<AckOf<E>>;
}

/**
 * Emits ANY event with ANY payload and resolves with the untyped answer: only for tests that send what
 * the protocol forbids on purpose (wrong types, unknown events, hostile shapes). Everything else uses emitAck.
 */
export function emitUntyped(socket: ClientSocket, event: string, payload?: unknown, timeoutMs = 20_000): Promise<any> {
  return untypedSocket(socket).timeout(timeoutMs).emitWithAck(event, payload);
}

/** The same socket without the event maps: only to emit or listen to what the protocol does not have, on purpose. */
export function untypedSocket(socket: ClientSocket): Socket {
  return socket as unknown as Socket;
}

/** Connects and joins as `userId` (dev mode) or with `token`. */
export async function joinedClient(url: string, userId: string, token?: string): Promise<ClientSocket> {
  const socket = await connectClient(url);
  const ack = await emitAck(socket, 'sync:join', token ? { token } : { userId });
  if (!ack?.success) {
    socket.close();
    throw new Error(`join failed: ${JSON.stringify(ack)}`);
  }
  return socket;
}

type Listener = (...args: any[]) => void;
type Untyped = { on(event: string, fn: Listener): unknown; off(event: string, fn: Listener): unknown };

/** Resolves with the next `count` items of a server event (arrays are flattened). */
export function collectEvents<E extends ServerEvent>(socket: ClientSocket, event: E, count: number, timeoutMs = 10_000): Promise<ItemOf<E>[]> {
  const untyped = socket as unknown as Untyped;
  return new Promise((resolve, reject) => {
    const got: ItemOf<E>[] = [];
    const onEvent = (payload: ItemOf<E> | ItemOf<E>[]) => {
      if (Array.isArray(payload)) got.push(...payload);
      else got.push(payload);
      if (got.length >= count) {
        clearTimeout(timer);
        untyped.off(event, onEvent as Listener);
        resolve(got);
      }
    };
    const timer = setTimeout(() => {
      untyped.off(event, onEvent as Listener);
      reject(new Error(`timed out waiting for ${count} '${event}' (got ${got.length})`));
    }, timeoutMs);
    untyped.on(event, onEvent as Listener);
  });
}

/** Records every payload of an event, for asserting later that something did NOT arrive. */
export function recordEvents<E extends ServerEvent>(socket: ClientSocket, event: E): ItemOf<E>[] {
  const got: ItemOf<E>[] = [];
  const onEvent = (payload: ItemOf<E> | ItemOf<E>[]) => {
    if (Array.isArray(payload)) got.push(...payload);
    else got.push(payload);
  };
  (socket as unknown as Untyped).on(event, onEvent as Listener);
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
