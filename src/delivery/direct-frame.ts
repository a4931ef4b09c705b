import type { Server, Socket } from 'socket.io';

/**
 * Live delivery's fast path: one WebSocket frame built once per group of sockets that receive the same
 * changes, written to each socket's TCP connection directly. Server frames are not masked, so the same
 * bytes serve every WebSocket-transport socket; what is saved per delivery is Socket.IO's and
 * Engine.IO's per-socket work (packet objects, write buffer, flush, events, the write callback) and
 * one of the two buffers of a `writev`.
 *
 * A direct write is used only where it provably keeps the order of everything the socket is sent
 * (`canWriteDirect`): the WebSocket transport, open, not upgrading, nothing in Engine.IO's write
 * buffer, the transport writable (no send of Engine.IO awaiting its write callback), the ws sender idle
 * (no queued or compressing frame), no per-message deflate, and nothing pending on the TCP socket (a
 * socket whose kernel buffer is full is a slow reader: it takes the normal path). Everything else
 * (long polling, an upgrade in progress, a custom parser with binary packets, connection state
 * recovery) goes through Socket.IO as before. Both paths write to the same TCP socket in call order,
 * so a direct frame and an Engine.IO packet (an ack, a bootstrap page) never overtake each other.
 *
 * The per-socket buffer bound (`queuedBytes`, src/common/socket-buffer.ts) counts what direct writes
 * leave on the TCP socket (ws `bufferedAmount` is the socket's writable length plus the sender's queue).
 */

interface WsSender {
  _state?: number;
  _queue?: unknown[];
  _bufferedBytes?: number;
}
interface NetSocketLike {
  destroyed?: boolean;
  writable?: boolean;
  writableLength?: number;
  write(data: Buffer): boolean;
}
interface WsLike {
  readyState?: number;
  _sender?: WsSender;
  _socket?: NetSocketLike;
  _extensions?: Record<string, unknown>;
}
interface EngineConnLike {
  readyState?: string;
  upgrading?: boolean;
  writeBuffer?: unknown[];
  transport?: { name?: string; writable?: boolean; socket?: WsLike };
}

/** ws's Sender state when no frame is being compressed or waits in its queue. */
const SENDER_IDLE = 0;
const WS_OPEN = 1;

/**
 * The Engine.IO message carrying the Socket.IO event `event` with `data`, framed as one unmasked
 * WebSocket text frame; null when the server's parser does not give a single text packet (binary
 * attachments, a custom parser) or the server keeps per-packet state (connection state recovery).
 */
export function encodeEventFrame(server: Server, event: string, data: unknown): Buffer | null {
  const srv = server as unknown as { encoder?: { encode(p: unknown): unknown[] }; opts?: { connectionStateRecovery?: unknown } };
  if (!srv.encoder || srv.opts?.connectionStateRecovery) return null;
  // socket.io-parser's EVENT packet (type 2) on the main namespace, no ack id
  const encoded = srv.encoder.encode({ type: 2, nsp: '/', data: [event, data] });
  if (encoded.length !== 1 || typeof encoded[0] !== 'string') return null;
  return textFrame(`4${encoded[0]}`); // "4": Engine.IO's message packet
}

/**
 * One final, unmasked, uncompressed WebSocket text frame (RFC 6455 section 5.2), header and payload in
 * one buffer: what ws's `Sender.frame` builds for a server, in a single buffer so that each socket
 * costs one `write` (not a two-buffer `writev`).
 */
export function textFrame(text: string): Buffer {
  const len = Buffer.byteLength(text);
  const header = len < 126 ? 2 : len < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + len);
  frame[0] = 0x81; // FIN + opcode 1 (text)
  if (len < 126) frame[1] = len;
  else if (len < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    frame.writeUInt32BE(len >>> 0, 6);
  }
  frame.write(text, header, 'utf8');
  return frame;
}

/** The TCP socket a direct frame may be written to now without reordering anything, or null. */
export function directTarget(socket: Socket): NetSocketLike | null {
  if (!socket.connected || socket.nsp?.name !== '/') return null;
  const conn = (socket as unknown as { conn?: EngineConnLike }).conn;
  if (!conn || conn.readyState !== 'open' || conn.upgrading || (conn.writeBuffer && conn.writeBuffer.length)) return null;
  const transport = conn.transport;
  if (!transport || transport.name !== 'websocket' || transport.writable !== true) return null;
  const ws = transport.socket;
  if (!ws || ws.readyState !== WS_OPEN) return null;
  if (ws._extensions && ws._extensions['permessage-deflate']) return null;
  const sender = ws._sender;
  if (!sender || sender._state !== SENDER_IDLE || (sender._queue && sender._queue.length) || sender._bufferedBytes) return null;
  const net = ws._socket;
  if (!net || net.destroyed || net.writable === false || typeof net.write !== 'function' || (net.writableLength ?? 1) !== 0) return null;
  return net;
}
