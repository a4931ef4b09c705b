import type { Socket } from 'socket.io';
import type { ClientToServerEvents, ServerToClientEvents } from '@sync/protocol';
import type { AuthUser } from './user';
import type { SocketSession } from './socket-session';

/** What the server keeps on each socket (socket.data). */
export interface SocketData {
  /** Set by the handshake middleware when a valid token came with the connection. */
  handshakeUser?: AuthUser;
  /** Set by sync:join. Only joined sockets may use the sync events. */
  user?: AuthUser;
  clientIp: string;
  /** Everything else this node keeps for the socket (opened by the handshake, released on disconnect). */
  session?: SocketSession;
}

export type SyncSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export const userRoom = (userId: string) => `user:${userId}`;
