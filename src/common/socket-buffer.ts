import type { Socket } from 'socket.io';

/**
 * What a Socket.IO socket has queued for its client and not yet handed to the kernel: the packets in
 * Engine.IO's write buffer (waiting while the transport is busy, or for the next poll) plus what the
 * WebSocket holds in user space (`ws.bufferedAmount`: the net.Socket's pending writes and the
 * sender's queue). A client that stops reading makes both grow without bound, so this is what a
 * per-socket bound must measure (live delivery, bootstrap backpressure).
 *
 * String packets count their length in UTF-16 code units (a lower bound of their UTF-8 bytes; JSON of
 * mostly ASCII text is close), binary ones their bytes. Cheap: a healthy socket has an empty write
 * buffer (then only the WebSocket's bufferedAmount is read), and a growing one is summed
 * incrementally (the buffer array is replaced on each flush).
 */
export function queuedBytes(socket: Socket): number {
  const conn = (socket as unknown as { conn?: EngineConn }).conn;
  if (!conn) return 0;
  // the common case, cheaply: nothing waits in Engine.IO's write buffer, and what the connection holds
  // (frames written directly by live delivery, src/delivery/direct-frame.ts, bypass Engine.IO and
  // leave the transport writable) is the WebSocket's bufferedAmount alone
  if (!conn.writeBuffer?.length) return transportBufferedBytes(conn.transport);
  return writeBufferBytes(conn.writeBuffer) + transportBufferedBytes(conn.transport);
}

interface EnginePacket {
  data?: unknown;
}
interface EngineConn {
  writeBuffer?: EnginePacket[];
  transport?: { writable?: boolean; socket?: { bufferedAmount?: number; terminate?: () => void } };
  close?: (discard?: boolean) => void;
}

const counted = new WeakMap<EnginePacket[], { n: number; bytes: number }>();

function packetBytes(p: EnginePacket): number {
  const d = p?.data;
  if (typeof d === 'string') return d.length;
  if (d instanceof ArrayBuffer) return d.byteLength;
  if (ArrayBuffer.isView(d)) return d.byteLength;
  return 0;
}

function writeBufferBytes(buf: EnginePacket[] | undefined): number {
  if (!buf || buf.length === 0) return 0;
  let c = counted.get(buf);
  if (!c || c.n > buf.length) c = { n: 0, bytes: 0 };
  for (let i = c.n; i < buf.length; i++) c.bytes += packetBytes(buf[i]) + 1;
  c.n = buf.length;
  counted.set(buf, c);
  return c.bytes;
}

function transportBufferedBytes(t: EngineConn['transport']): number {
  const n = t?.socket?.bufferedAmount;
  return typeof n === 'number' && Number.isFinite(n) ? n : 0;
}

/**
 * Closes a socket at once, without waiting for its queued output to drain (a client that does not
 * read would keep it forever): Socket.IO's disconnect, then the transport discarded and, for a
 * WebSocket, the TCP connection destroyed so the buffered bytes are freed now.
 */
export function closeNow(socket: Socket): void {
  const conn = (socket as unknown as { conn?: EngineConn }).conn;
  try {
    socket.disconnect(true);
  } finally {
    try {
      conn?.close?.(true);
    } catch {
      /* already closed */
    }
    try {
      conn?.transport?.socket?.terminate?.();
    } catch {
      /* already closed */
    }
  }
}
