import { Logger } from '@nestjs/common';
import { WebPubSubServiceClient } from '@azure/web-pubsub';
import type { Server } from 'socket.io';
import { parseWebPubSubConnectionString } from '../../config/web-pubsub-connection-string';

/**
 * Azure Web PubSub for Socket.IO (chosen by config: WEB_PUBSUB_CONNECTION_STRING). The service holds
 * the clients' connections and forwards their events to our nodes through a tunnel each node opens;
 * the Socket.IO server of each node
 * gets the extension's engine and adapter (`useAzureSocketIO`). Changes still travel between nodes on
 * our own bus (REDIS_URL): each node delivers to the sockets it serves, through the service.
 *
 * Only the parts that need no Azure are verified here (negotiate tokens, the wiring at boot);
 * connecting real clients through the service is untested (README, "Azure Web PubSub").
 */
export interface AzureWebPubSubOptions {
  connectionString: string;
  hub: string;
}

/** What `GET /api/negotiate` answers: what a Socket.IO client needs to connect through the service. */
export interface NegotiateResponse {
  /** The service's client URL with the token (`wss://<host>/clients/socketio/hubs/<hub>?access_token=...`). */
  url: string;
  /** The client access token (a JWT signed with the connection string's AccessKey). */
  token: string;
  /** Socket.IO client: `io(endpoint, { path, query: { access_token: token }, auth: { token: <your JWT> } })`. */
  endpoint: string;
  path: string;
  /** When `token` expires (UTC ms): negotiate again before. */
  expiresAt: number;
}

/** Lifetime of a negotiated token (the Socket.IO connection outlives it; a reconnect negotiates again). */
export const NEGOTIATE_TOKEN_MINUTES = 60;

export class AzureWebPubSubNegotiator {
  private readonly client: WebPubSubServiceClient;

  constructor(private readonly options: AzureWebPubSubOptions) {
    this.client = new WebPubSubServiceClient(options.connectionString, options.hub);
  }

  /** A token for `userId` (the authenticated caller: never a user named by the request). Signed locally, no network. */
  async negotiate(userId: string): Promise<NegotiateResponse> {
    const issuedAt = Date.now();
    const t = await this.client.getClientAccessToken({ userId, expirationTimeInMinutes: NEGOTIATE_TOKEN_MINUTES, clientProtocol: 'socketio' });
    const base = new URL(t.baseUrl);
    return {
      url: t.url,
      token: t.token,
      endpoint: base.origin,
      path: base.pathname,
      // jsonwebtoken counts from its own clock, in whole seconds
      expiresAt: Math.floor(issuedAt / 1000) * 1000 + NEGOTIATE_TOKEN_MINUTES * 60_000,
    };
  }
}

/**
 * Hands the node's Socket.IO server to the service: the extension's engine (connections held by the
 * service) and adapter (emits go through the service), installed synchronously; the returned promise
 * resolves once the tunnel (a WebSocket the node opens to the service, signed with the AccessKey) is
 * up. The extension pins socket.io ~4.7; package.json's `overrides` give it our socket.io (one copy
 * in the tree: `npm ls socket.io`).
 */
export async function useAzureWebPubSub(server: Server, options: AzureWebPubSubOptions): Promise<void> {
  const parsed = parseWebPubSubConnectionString(options.connectionString);
  if ('error' in parsed) throw new Error(`WEB_PUBSUB_CONNECTION_STRING: ${parsed.error}`);
  // loaded only when configured: the extension patches socket.io's Server prototype when imported
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { useAzureSocketIO } = require('@azure/web-pubsub-socket.io') as typeof import('@azure/web-pubsub-socket.io');
  const logger = new Logger('AzureWebPubSub');
  logger.log(`Socket.IO is handed to Azure Web PubSub ${parsed.endpoint} (hub ${options.hub}): opening the tunnel`);
  // resolves once the tunnel is connected (the extension retries until then)
  await useAzureSocketIO(server, { connectionString: options.connectionString, hub: options.hub });
  logger.log(`tunnel to Azure Web PubSub ${parsed.endpoint} connected: clients are served through it`);
}
